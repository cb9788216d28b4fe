using System.Buffers;
using System.Runtime.InteropServices;

namespace Headwise.Client;

/// <summary>
/// The caller's floats seen as bytes, without a copy, for a request message to carry X: copied into a new array first,
/// X cost the client a megabyte-sized allocation (on the large-object heap, renewed only by gen-2 collections) and a copy
/// per call, before the serializer copied it again onto the wire. The call reads X while it runs, as a stream's
/// WriteAsync reads its buffer: the caller leaves it unchanged until the task completes.
/// </summary>
internal sealed class BytesOverFloats : MemoryManager<byte>
{
    private readonly float[] _floats;
    private readonly int _start, _length;

    private BytesOverFloats(ArraySegment<float> floats) => (_floats, _start, _length) = (floats.Array!, floats.Offset, floats.Count);

    /// <summary>The bytes of <paramref name="data"/>: a view of its array (or of the bytes under a previous answer's Y),
    /// else a copy.</summary>
    public static ReadOnlyMemory<byte> Of(ReadOnlyMemory<float> data)
    {
        if (FloatsOverBytes.TryGetBytes(data, out var bytes)) return bytes;
        if (MemoryMarshal.TryGetArray(data, out var floats)) return new BytesOverFloats(floats).Memory;
        return MemoryMarshal.AsBytes(data.Span).ToArray();
    }

    public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(_floats.AsSpan(_start, _length));

    // Pinned through the float array, so only at a float's first byte; protobuf's serializer reads spans and never pins.
    public override MemoryHandle Pin(int elementIndex = 0) => elementIndex % sizeof(float) == 0
        ? _floats.AsMemory(_start + elementIndex / sizeof(float)).Pin()
        : throw new NotSupportedException("X's bytes are pinned at float boundaries only.");

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
