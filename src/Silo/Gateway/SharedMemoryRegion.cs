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

    // SafeBuffer.ReadSpan and WriteSpan move one element per iteration: 3 MB of Y took ~10 ms that way on this VM. Marshal.Copy
    // is one memmove (~0.2 ms), on the view's address while a reference on its handle keeps it mapped.

    /// <summary>Copies <paramref name="count"/> bytes from <paramref name="offset"/> (checked by the caller) to the start of <paramref name="destination"/>.</summary>
    public void Read(long offset, byte[] destination, int count) =>
        WithAddress(offset, address => System.Runtime.InteropServices.Marshal.Copy(address, destination, 0, count));

    /// <summary>Copies all of <paramref name="source"/> to <paramref name="offset"/> (checked by the caller).</summary>
    public void Write(long offset, byte[] source) =>
        WithAddress(offset, address => System.Runtime.InteropServices.Marshal.Copy(source, 0, address, source.Length));

    private void WithAddress(long offset, Action<IntPtr> copy)
    {
        var handle = _view.SafeMemoryMappedViewHandle;
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            copy(handle.DangerousGetHandle() + (nint)(_view.PointerOffset + offset));
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    private void Unmap()
    {
        _view.Dispose();
        _file.Dispose();
    }
}

/// <summary>A checked byte range of a leased region, named by the request field it came from.</summary>
internal sealed record SharedMemoryRange(SharedMemoryRegion Region, long Offset, long ByteSize, string Field)
{
    /// <summary>The first <paramref name="count"/> bytes of the range into <paramref name="destination"/>.</summary>
    public void Read(byte[] destination, int count) => Region.Read(Offset, destination, count);

    /// <summary>All of <paramref name="source"/>, which must be the range's length (never past it, whatever a caller computed).</summary>
    public void Write(byte[] source)
    {
        if (source.LongLength != ByteSize)
            throw new InvalidOperationException($"{Field}: {source.LongLength} bytes do not fit a range of {ByteSize}.");
        Region.Write(Offset, source);
    }
}
