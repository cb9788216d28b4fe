using System.IO.MemoryMappedFiles;

namespace Headwise.Silo.Gateway;

/// <summary>
/// One registered region: the first <see cref="ByteSize"/> bytes of a file in the shared-memory directory, kept mapped
/// while registered. Calls hold a lease on it; unregistering while a call reads or writes it only marks it retired, and
/// the view is unmapped when the last lease ends, so a call never touches an unmapped page.
/// </summary>
internal sealed class SharedMemoryRegion
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly Lock _lock = new();
    private int _leases;
    private bool _retired;

    public SharedMemoryRegion(string name, string key, long byteSize, MemoryMappedFile file, MemoryMappedViewAccessor view)
    {
        Name = name;
        Key = key;
        ByteSize = byteSize;
        _file = file;
        _view = view;
    }

    public string Name { get; }
    public string Key { get; }
    public long ByteSize { get; }

    /// <summary>Takes a lease for one call; false when the region was unregistered meanwhile.</summary>
    public bool TryAcquire()
    {
        lock (_lock)
        {
            if (_retired) return false;
            _leases++;
            return true;
        }
    }

    public void Release()
    {
        lock (_lock)
        {
            if (--_leases > 0 || !_retired) return;
        }
        Unmap();
    }

    /// <summary>No new leases; unmapped now, or when the last call holding one ends.</summary>
    public void Retire()
    {
        lock (_lock)
        {
            if (_retired) return;
            _retired = true;
            if (_leases > 0) return;
        }
        Unmap();
    }

    /// <summary>Copies <paramref name="destination"/>.Length bytes from <paramref name="offset"/> (checked by the caller).</summary>
    public void Read(long offset, Span<byte> destination) =>
        _view.SafeMemoryMappedViewHandle.ReadSpan((ulong)(_view.PointerOffset + offset), destination);

    /// <summary>Copies <paramref name="source"/> to <paramref name="offset"/> (checked by the caller).</summary>
    public void Write(long offset, ReadOnlySpan<byte> source) =>
        _view.SafeMemoryMappedViewHandle.WriteSpan((ulong)(_view.PointerOffset + offset), source);

    private void Unmap()
    {
        _view.Dispose();
        _file.Dispose();
    }
}

/// <summary>A checked byte range of a leased region, named by the request field it came from.</summary>
internal sealed record SharedMemoryRange(SharedMemoryRegion Region, long Offset, long ByteSize, string Field)
{
    public void Read(Span<byte> destination) => Region.Read(Offset, destination);

    public void Write(ReadOnlySpan<byte> source) => Region.Write(Offset, source);
}
