using System.Buffers;
using Google.Protobuf;

namespace Headwise.Wire;

/// <summary>
/// Where, in a serialized protobuf message, a bytes field inside a message field lies (ForwardRequest.input.data: X;
/// ForwardResponse.output.data: Y), so a reader can copy those bytes into a buffer of its own and let the generated
/// parser read only the rest. Protobuf's parser puts every bytes field into a new array and has no hook to say where; for
/// a megabyte tensor that is a new large-object array per call, which drove the silo's gen-2 collections
/// (docs/scaling.md, "Large inputs and gen-2 collections"). Compiled into the silo and the SDK, beside their own proto
/// types. Offsets count bytes from the start of the message.
/// </summary>
/// <param name="OuterStart">Where the outer field's tag starts.</param>
/// <param name="OuterEnd">Where the outer field ends (its tag, length and body).</param>
/// <param name="InnerStart">Where the outer field's body, the inner message, starts.</param>
/// <param name="DataFieldStart">Where the bytes field's tag starts.</param>
/// <param name="DataStart">Where the bytes field's value starts.</param>
/// <param name="DataLength">The bytes field's length.</param>
internal readonly record struct NestedBytesField(long OuterStart, long OuterEnd, long InnerStart, long DataFieldStart, long DataStart, long DataLength)
{
    private const int WireVarint = 0, WireFixed64 = 1, WireLengthDelimited = 2, WireFixed32 = 5;

    /// <summary>Where the bytes field ends.</summary>
    public long DataEnd => DataStart + DataLength;

    /// <summary>
    /// Finds field <paramref name="innerField"/> of the message in field <paramref name="outerField"/> of
    /// <paramref name="message"/>, when both appear exactly once, are length-delimited and the bytes are at least
    /// <paramref name="minLength"/> long. Anything else (a field given twice, which protobuf merges; groups; a wire error)
    /// answers false, and the caller parses the whole message the ordinary way, which also reports any error.
    /// </summary>
    public static bool TryFind(ReadOnlySequence<byte> message, int outerField, int innerField, long minLength, out NestedBytesField found)
    {
        found = default;
        if (!TryFindOnce(message, 0, message.Length, outerField, out long outerStart, out long innerStart, out long innerLength))
            return false;
        if (!TryFindOnce(message, innerStart, innerLength, innerField, out long dataFieldStart, out long dataStart, out long dataLength))
            return false;
        if (dataLength < minLength) return false;
        found = new NestedBytesField(outerStart, innerStart + innerLength, innerStart, dataFieldStart, dataStart, dataLength);
        return true;
    }

    /// <summary>
    /// Everything but the bytes field, parsed by the generated parsers: the outer message without the outer field, and the
    /// inner message without the bytes field (a few dozen bytes of shape and flags, copied out of the message once).
    /// </summary>
    public (TOuter Outer, TInner Inner) ParseRest<TOuter, TInner>(ReadOnlySequence<byte> message, MessageParser<TOuter> outer,
        MessageParser<TInner> inner) where TOuter : IMessage<TOuter> where TInner : IMessage<TInner>
    {
        long restLength = message.Length - (OuterEnd - OuterStart) + (OuterEnd - InnerStart) - (DataEnd - DataFieldStart);
        var rest = ArrayPool<byte>.Shared.Rent((int)restLength);
        try
        {
            int outerLength = CopyWithout(message, 0, message.Length, OuterStart, OuterEnd, rest);
            int innerLength = CopyWithout(message, InnerStart, OuterEnd, DataFieldStart, DataEnd, rest.AsSpan(outerLength));
            return (outer.ParseFrom(rest, 0, outerLength), inner.ParseFrom(rest, outerLength, innerLength));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rest);
        }
    }

    private static int CopyWithout(ReadOnlySequence<byte> message, long start, long end, long cutStart, long cutEnd, Span<byte> destination)
    {
        int before = (int)(cutStart - start), after = (int)(end - cutEnd);
        message.Slice(start, before).CopyTo(destination);
        message.Slice(cutEnd, after).CopyTo(destination[before..]);
        return before + after;
    }

    /// <summary>
    /// The one occurrence of length-delimited field <paramref name="field"/> among the fields in
    /// [<paramref name="start"/>, start + <paramref name="length"/>): where its tag and its value start, and its length.
    /// </summary>
    private static bool TryFindOnce(ReadOnlySequence<byte> message, long start, long length, int field,
        out long fieldStart, out long valueStart, out long valueLength)
    {
        fieldStart = valueStart = valueLength = -1;
        var reader = new SequenceReader<byte>(message.Slice(start, length));
        while (!reader.End)
        {
            long tagStart = start + reader.Consumed;
            if (!TryReadVarint(ref reader, out ulong tag) || tag >> 3 == 0 || tag >> 3 > int.MaxValue) return false;
            int number = (int)(tag >> 3), wire = (int)(tag & 7);
            switch (wire)
            {
                case WireVarint:
                    if (!TryReadVarint(ref reader, out _)) return false;
                    if (number == field) return false;
                    break;
                case WireFixed64 or WireFixed32:
                    int size = wire == WireFixed64 ? 8 : 4;
                    if (reader.Remaining < size || number == field) return false;
                    reader.Advance(size);
                    break;
                case WireLengthDelimited:
                    if (!TryReadVarint(ref reader, out ulong valueSize) || valueSize > (ulong)reader.Remaining) return false;
                    if (number == field)
                    {
                        if (fieldStart >= 0) return false;
                        fieldStart = tagStart;
                        valueStart = start + reader.Consumed;
                        valueLength = (long)valueSize;
                    }
                    reader.Advance((long)valueSize);
                    break;
                default:
                    return false;
            }
        }
        return fieldStart >= 0;
    }

    private static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 70; shift += 7)
        {
            if (!reader.TryRead(out byte b)) return false;
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return true;
        }
        return false;
    }
}
