using System.IO.MemoryMappedFiles;
using System.Text.RegularExpressions;
using Headwise.Contracts;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Maps the file a RegisterSharedMemory key names, refusing anything but a plain regular file directly inside the
/// shared-memory directory: the key may not leave the directory ('/', '..'), the file may not be a symbolic link, and
/// the opened handle must resolve to that very path (a link swapped in after the check is caught on the open handle).
/// </summary>
internal static partial class SharedMemoryFile
{
    /// <summary>Names and keys: short, printable, no separators; '.' and '..' alone are refused apart.</summary>
    [GeneratedRegex("^[A-Za-z0-9._-]{1,200}$")]
    public static partial Regex PlainName();

    public static void ValidateName(string value, string field)
    {
        if (!PlainName().IsMatch(value) || value is "." or "..")
            throw new HeadwiseException(ErrorCode.InvalidArgument,
                $"{field} is '{EchoedValue.Of(value)}'; use 1-200 characters of A-Z, a-z, 0-9, '.', '_' and '-' (not '.' or '..').");
    }

    public static SharedMemoryRegion Map(string directory, string name, string key, long byteSize)
    {
        ValidateName(key, "key");
        if (byteSize < 1)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"byte_size is {byteSize}; a region needs at least 1 byte.");
        var root = new DirectoryInfo(directory);
        if (!root.Exists)
            throw new HeadwiseException(ErrorCode.FailedPrecondition,
                $"the shared-memory directory '{directory}' does not exist on this silo (Headwise__SharedMemoryDirectory).");
        string resolvedRoot = root.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? root.FullName;
        string path = Path.Join(resolvedRoot, key);
        var info = new FileInfo(path);
        if (info.LinkTarget is not null)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"key '{key}' is a symbolic link; register the file itself.");
        if (!info.Exists)
            throw new HeadwiseException(ErrorCode.NotFound, $"key '{key}': no such file in {directory}; create it before registering.");

        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new HeadwiseException(ErrorCode.FailedPrecondition, $"key '{key}': this silo cannot open the file for reading and writing ({e.GetType().Name}).");
        }
        try
        {
            // What the open handle is: a link or rename slipped in between the check and the open shows here.
            if (OperatingSystem.IsLinux() && new FileInfo($"/proc/self/fd/{stream.SafeFileHandle.DangerousGetHandle()}").LinkTarget is { } opened
                && opened != path)
                throw new HeadwiseException(ErrorCode.InvalidArgument, $"key '{key}' does not resolve to a plain file of {directory}.");
            if (stream.Length < byteSize)
                throw new HeadwiseException(ErrorCode.InvalidArgument, $"key '{key}' has {stream.Length} bytes; byte_size {byteSize} needs at least that many.");
            var file = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.ReadWrite,
                HandleInheritability.None, leaveOpen: false);
            try
            {
                return new SharedMemoryRegion(name, key, byteSize, file, file.CreateViewAccessor(0, byteSize, MemoryMappedFileAccess.ReadWrite));
            }
            catch
            {
                file.Dispose();
                throw;
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }
}
