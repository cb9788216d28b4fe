using System.Buffers;
using System.Runtime.InteropServices;

namespace Headwise.Grains;

/// <summary>
/// The bytes a storage serializer wrote for one state (<see cref="ExactGrainStorageSerializer"/>): a fresh array that no
/// one writes to again. The embedded memory storage passes them to its storage grain and back through local grain calls,
/// which deep-copy their arguments and answers; <see cref="FlatReadOnlyMemoryCopier{T}"/> lets a copy share these bytes
/// rather than copy them twice per stored state (a decode step's stored inputs, every byte of a weight upload).
/// Anything that asks for the array (Redis' client, Orleans' codecs) gets the whole array without a copy. Internal: the
/// copier trusts every StoredBytes never to change, so only this assembly's serializer makes them.
/// </summary>
internal sealed class StoredBytes(byte[] bytes) : MemoryManager<byte>
{
    /// <inheritdoc/>
    public override Span<byte> GetSpan() => bytes;

    /// <inheritdoc/>
    public override unsafe MemoryHandle Pin(int elementIndex = 0)
    {
        if ((uint)elementIndex > (uint)bytes.Length) throw new ArgumentOutOfRangeException(nameof(elementIndex));
        var handle = GCHandle.Alloc(bytes, GCHandleType.Pinned);
        return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle);
    }

    /// <inheritdoc/>
    public override void Unpin() { }

    /// <inheritdoc/>
    protected override bool TryGetArray(out ArraySegment<byte> segment)
    {
        segment = new ArraySegment<byte>(bytes);
        return true;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing) { }
}
