using System.IO.MemoryMappedFiles;

namespace Headwise.Client;

/// <summary>
/// One file in the shared-memory directory that this client created and keeps mapped, registered with the silo under
/// <see cref="Name"/> (also its file name). One forward pass uses it at a time: X at offset 0, Y right after.
/// </summary>
internal sealed class SharedMemoryBuffer : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;

    private SharedMemoryBuffer(string name, string path, long byteSize, MemoryMappedFile file, MemoryMappedViewAccessor view)
    {
        Name = name;
        Path = path;
        ByteSize = byteSize;
        _file = file;
        _view = view;
    }

    public string Name { get; }
    public string Path { get; }
    public long ByteSize { get; }

    /// <summary>Creates a new file of <paramref name="byteSize"/> bytes, readable and writable by this user only, and maps it.</summary>
    public static SharedMemoryBuffer Create(string directory, long byteSize)
    {
        string name = $"headwise-{Environment.ProcessId}-{Guid.NewGuid():N}";
        string path = System.IO.Path.Join(directory, name);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        var stream = new FileStream(path, options);
        try
        {
            stream.SetLength(byteSize);
            var file = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.ReadWrite,
                HandleInheritability.None, leaveOpen: false);
            return new SharedMemoryBuffer(name, path, byteSize, file, file.CreateViewAccessor(0, byteSize, MemoryMappedFileAccess.ReadWrite));
        }
        catch
        {
            stream.Dispose();
            File.Delete(path);
            throw;
        }
    }

    // SafeBuffer.ReadSpan and WriteSpan move one element per iteration (~10 ms for 3 MB on this project's VM); Marshal.Copy is
    // one memmove. The buffer is used by one call at a time and unmapped only after it is returned, so the address holds.

    /// <summary>Copies <paramref name="source"/> to <paramref name="offset"/>.</summary>
    public void Write(long offset, ReadOnlyMemory<float> source)
    {
        if (System.Runtime.InteropServices.MemoryMarshal.TryGetArray(source, out var array))
            System.Runtime.InteropServices.Marshal.Copy(array.Array!, array.Offset, Address(offset), array.Count);
        else if (FloatsOverBytes.TryGetBytes(source, out var bytes)) // a previous answer's Y, chained into the next layer
            System.Runtime.InteropServices.Marshal.Copy(bytes.Array!, bytes.Offset, Address(offset), bytes.Count);
        else
            _view.SafeMemoryMappedViewHandle.WriteSpan((ulong)(_view.PointerOffset + offset), source.Span);
    }

    /// <summary>Fills <paramref name="destination"/> from <paramref name="offset"/>.</summary>
    public void Read(long offset, Memory<float> destination)
    {
        if (System.Runtime.InteropServices.MemoryMarshal.TryGetArray<float>(destination, out var array))
            System.Runtime.InteropServices.Marshal.Copy(Address(offset), array.Array!, array.Offset, array.Count);
        else
            _view.SafeMemoryMappedViewHandle.ReadSpan((ulong)(_view.PointerOffset + offset), destination.Span);
    }

    private IntPtr Address(long offset) => _view.SafeMemoryMappedViewHandle.DangerousGetHandle() + (nint)(_view.PointerOffset + offset);

    /// <summary>Unmaps and deletes the file (the silo's own mapping, if still registered, keeps its pages until it unmaps).</summary>
    public void Dispose()
    {
        _view.Dispose();
        _file.Dispose();
        File.Delete(Path);
    }
}
