using System.Buffers;
using Google.Protobuf;
using Headwise.Wire;
using Headwise.V1;
using static Headwise.TestSupport.ProtoWire;

namespace Headwise.Contracts.Tests;

/// <summary>
/// The gateway finds ForwardRequest.input.data in the serialized request itself, copies it into a pooled array and lets
/// the generated parser read the rest (PooledForwardRequest); the SDK does the same with a response's Y for a caller's
/// buffer. The oracle here is Google.Protobuf's own parse of the whole
/// message: what the split gives back, put together again, must equal it field for field, unknown fields included, for
/// messages cut into arbitrary segments as Kestrel's buffers cut them; and every encoding whose meaning depends on
/// protobuf's merge rules (a field given twice) is left to the generated parser.
/// </summary>
public sealed class NestedBytesFieldTests
{
    private const int MinLength = 64 * 1024;

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 7)]
    [InlineData(3, 64)]
    [InlineData(4, 1000)]
    public void Split_and_reassembled_requests_equal_the_generated_parse(int seed, int segments)
    {
        var random = new Random(seed);
        for (int trial = 0; trial < 20; trial++)
        {
            var request = RandomRequest(random, MinLength + random.Next(0, 300_000));
            var bytes = request.ToByteArray();
            var message = Segmented(bytes, segments, random);

            Assert.True(NestedBytesField.TryFind(message, ForwardRequest.InputFieldNumber, Tensor.DataFieldNumber, MinLength, out var field));
            Assert.Equal(request.Input.Data.Length, field.DataLength);
            Assert.Equal(request, Reassemble(message, field));
        }
    }

    [Fact]
    public void Unknown_fields_and_any_field_order_are_kept()
    {
        var random = new Random(11);
        var request = RandomRequest(random, MinLength + 5);
        // Fields in reverse order, and fields this proto does not know (varint, fixed64, length-delimited, fixed32) in
        // both messages: all valid protobuf, all kept by the generated parser.
        var tensor = Concat(Field(Tensor.DataFieldNumber, request.Input.Data.ToByteArray()), Unknown(),
            new Tensor { Dtype = request.Input.Dtype, Shape = { request.Input.Shape } }.ToByteArray());
        var outer = Concat(Unknown(), Field(ForwardRequest.InputFieldNumber, tensor), Unknown(),
            new ForwardRequest { Model = request.Model, Layer = request.Layer, Causal = request.Causal, Lengths = { request.Lengths } }.ToByteArray());
        var message = Segmented(outer, 5, random);

        Assert.True(NestedBytesField.TryFind(message, ForwardRequest.InputFieldNumber, Tensor.DataFieldNumber, MinLength, out var field));
        var expected = ForwardRequest.Parser.ParseFrom(outer);
        Assert.Equal(expected, Reassemble(message, field));
        Assert.Equal(request.Input.Data, expected.Input.Data);
    }

    [Fact]
    public void Encodings_that_protobuf_merges_or_that_are_not_well_formed_are_left_to_the_generated_parser()
    {
        var random = new Random(12);
        var request = RandomRequest(random, MinLength);
        var bytes = request.ToByteArray();
        var cases = new Dictionary<string, byte[]>
        {
            // Protobuf merges a message field given twice and keeps the last of a bytes field given twice.
            ["input given twice"] = Concat(bytes, new ForwardRequest { Input = new Tensor { Shape = { 1 } } }.ToByteArray()),
            ["data given twice"] = Field(ForwardRequest.InputFieldNumber,
                Concat(Field(Tensor.DataFieldNumber, new byte[MinLength]), Field(Tensor.DataFieldNumber, new byte[MinLength]))),
            ["data below the minimum"] = RandomRequest(random, MinLength - 1).ToByteArray(),
            ["no input"] = new ForwardRequest { Model = "m" }.ToByteArray(),
            ["input without data"] = new ForwardRequest { Input = new Tensor { Shape = { 1, 2, 3 } } }.ToByteArray(),
            ["truncated"] = bytes[..^1],
            ["input as a varint"] = Concat([(byte)(ForwardRequest.InputFieldNumber << 3)], [5], bytes),
            ["a group"] = Concat([12 << 3 | 3, 12 << 3 | 4], bytes),
            ["field number 0"] = Concat([0, 0], bytes),
            ["varint of 11 bytes"] = Concat([12 << 3], Enumerable.Repeat((byte)0xFF, 10).Append((byte)1).ToArray(), bytes),
            ["length past the end"] = Concat(bytes, [13 << 3 | 2, 0xFF, 0xFF, 0x03]),
        };
        foreach (var (name, message) in cases)
            Assert.False(NestedBytesField.TryFind(new ReadOnlySequence<byte>(message), ForwardRequest.InputFieldNumber, Tensor.DataFieldNumber, MinLength, out _), name);
    }

    /// <summary>The request as PooledForwardRequest builds it: the rest through the generated parsers, the data copied.</summary>
    private static ForwardRequest Reassemble(ReadOnlySequence<byte> message, NestedBytesField field)
    {
        var (request, input) = field.ParseRest(message, ForwardRequest.Parser, Tensor.Parser);
        Assert.Null(request.Input);
        Assert.True(input.Data.IsEmpty);
        input.Data = ByteString.CopyFrom(message.Slice(field.DataStart, field.DataLength).ToArray());
        request.Input = input;
        return request;
    }

    private static ForwardRequest RandomRequest(Random random, int dataBytes)
    {
        var data = new byte[dataBytes];
        random.NextBytes(data);
        var request = new ForwardRequest
        {
            Model = new string('m', random.Next(1, 300)),
            Layer = random.Next(0, 1 << 20),
            Causal = random.Next(2) == 1,
            ReturnAttention = random.Next(2) == 1,
            Bf16Wire = random.Next(2) == 1,
            Input = new Tensor { Dtype = (DType)random.Next(0, 3), Data = ByteString.CopyFrom(data) },
        };
        request.Input.Shape.Add(Enumerable.Range(0, random.Next(0, 5)).Select(_ => random.NextInt64(0, 1L << 40)));
        request.Lengths.Add(Enumerable.Range(0, random.Next(0, 40)).Select(_ => random.Next()));
        if (random.Next(2) == 1) request.OutputShm = new SharedMemoryRef { Region = "r", Offset = random.NextInt64(), ByteSize = random.Next() };
        return request;
    }


    /// <summary><paramref name="bytes"/> as a sequence of <paramref name="segments"/> pieces cut at random places.</summary>
    private static ReadOnlySequence<byte> Segmented(byte[] bytes, int segments, Random random)
    {
        var cuts = Enumerable.Range(0, segments - 1).Select(_ => random.Next(0, bytes.Length + 1)).Append(0).Append(bytes.Length).Order().ToArray();
        Segment? first = null, last = null;
        for (int i = 0; i + 1 < cuts.Length; i++)
        {
            var piece = bytes[cuts[i]..cuts[i + 1]];
            if (first is null) first = last = new Segment(piece, 0);
            else last = last!.Append(piece);
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] piece, long runningIndex)
        {
            Memory = piece;
            RunningIndex = runningIndex;
        }

        public Segment Append(byte[] piece)
        {
            var next = new Segment(piece, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
