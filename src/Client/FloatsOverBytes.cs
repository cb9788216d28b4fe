using System.Buffers;
using System.Runtime.InteropServices;
using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>
/// A parsed response's float32 bytes seen as floats, without a copy: Y of a forward pass is megabytes, and a parsed
/// message's bytes are an array of its own that nothing writes to again, so the SDK's answer can keep it.
/// </summary>
internal sealed class FloatsOverBytes : MemoryManager<float>
{
    private readonly byte[] _bytes;

    private FloatsOverBytes(byte[] bytes) => _bytes = bytes;

    /// <summary>The floats of <paramref name="data"/>: a view of its array when the message owns one whole, else a copy.</summary>
    public static ReadOnlyMemory<float> Of(ReadOnlyMemory<byte> data) =>
        MemoryMarshal.TryGetArray(data, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
                                                          && segment.Count % sizeof(float) == 0
            ? new FloatsOverBytes(segment.Array).Memory
            : FloatBytes.ToFloats(data.Span);

    /// <summary>The bytes of floats [start, start + length) of a view, for a copy that wants an array.</summary>
    public static bool TryGetBytes(ReadOnlyMemory<float> memory, out ArraySegment<byte> bytes)
    {
        if (MemoryMarshal.TryGetMemoryManager<float, FloatsOverBytes>(memory, out var view, out int start, out int length))
        {
            bytes = new ArraySegment<byte>(view._bytes, start * sizeof(float), length * sizeof(float));
            return true;
        }
        bytes = default;
        return false;
    }

    public override Span<float> GetSpan() => MemoryMarshal.Cast<byte, float>(_bytes.AsSpan());

    // The array's own pin, at the element's byte: the handle unpins itself when disposed.
    public override MemoryHandle Pin(int elementIndex = 0) => _bytes.AsMemory(elementIndex * sizeof(float)).Pin();

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
