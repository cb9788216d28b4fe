using System.Text.RegularExpressions;

namespace Headwise.Grains.Forward;

/// <summary>
/// The tensor channel's payloads between silos of one host: the sender writes a payload into a file of the shared-memory
/// directory named for its ticket, the frame on TCP carries only the header, and the receiver reads the file into its
/// buffer and deletes it. Two channels share the directory when each can see the other's marker file in its own: the
/// same tmpfs, not merely the same machine (containers have a /dev/shm each unless one is mounted into both).
/// </summary>
internal sealed partial class TensorChannelFiles : IDisposable
{
    private const string MarkerPrefix = "headwise-channel-";
    private const string PayloadPrefix = "headwise-tensor-";

    // Only the sender's process and user read a payload (a tensor is the caller's data).
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly string _directory;
    private readonly Dictionary<string, bool> _shares = new(StringComparer.Ordinal);

    // The marker stays open (a shared lock) while the channel lives: the kernel drops the lock when the process dies,
    // however it dies, which is how a later channel tells a dead silo's marker from a live one's.
    private readonly FileStream _hold;

    private TensorChannelFiles(string directory, string marker, FileStream hold)
    {
        _directory = directory;
        Marker = marker;
        _hold = hold;
    }

    public string Marker { get; }

    /// <summary>The files of a channel in <paramref name="directory"/>, its marker created; null when the directory
    /// cannot hold them (absent, read-only): the channel then sends every payload over TCP.</summary>
    public static TensorChannelFiles? Open(string directory)
    {
        string marker = MarkerPrefix + Guid.NewGuid().ToString("N");
        FileStream hold;
        try
        {
            hold = new FileStream(Path.Combine(directory, marker), Creating());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        DeleteDeadMarkers(directory, marker);
        return new TensorChannelFiles(directory, marker, hold);
    }

    // Markers no live channel holds: their silos were killed (a silo that stops deletes its own). One that can be locked
    // exclusively has no holder. With .NET's file locking turned off every marker would look dead, so none is touched.
    private static void DeleteDeadMarkers(string directory, string own)
    {
        if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_IO_DISABLEFILELOCKING") is "1" or "true") return;
        try
        {
            foreach (var path in Directory.EnumerateFiles(directory, MarkerPrefix + "*"))
            {
                if (Path.GetFileName(path) == own) continue;
                try
                {
                    using (File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.None)) { }
                    File.Delete(path);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Held by a live channel, or not ours to delete.
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Whether the channel that advertises <paramref name="peerMarker"/> reads this directory too.</summary>
    public bool Shares(string peerMarker)
    {
        lock (_shares)
        {
            if (_shares.TryGetValue(peerMarker, out bool shares)) return shares;
            // A marker is a plain name of the form this class writes, never a path; and one this process can open, as it
            // must open the peer's payload files (a silo of another user on the same tmpfs would fail every read).
            shares = MarkerName().IsMatch(peerMarker) && CanRead(Path.Combine(_directory, peerMarker));
            _shares[peerMarker] = shares;
            return shares;
        }
    }

    private static bool CanRead(string path)
    {
        try
        {
            File.OpenHandle(path, FileMode.Open, FileAccess.Read).Dispose();
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    public void Write(Guid ticket, ReadOnlySpan<byte> payload)
    {
        try
        {
            using var file = new FileStream(PathOf(ticket), Creating());
            file.Write(payload);
        }
        catch (IOException)
        {
            // A full /dev/shm: no half-written file stays behind, and the caller sends the tensor another way.
            Delete(ticket);
            throw;
        }
    }

    /// <summary>Reads the payload of <paramref name="ticket"/> into <paramref name="payload"/> (its whole length) and
    /// deletes the file.</summary>
    /// <exception cref="IOException">The file is missing or not the frame's length.</exception>
    public void Read(Guid ticket, byte[] payload)
    {
        string path = PathOf(ticket);
        try
        {
            using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            long length = RandomAccess.GetLength(file);
            if (length != payload.Length)
                throw new IOException($"tensor {ticket} in shared memory holds {length} bytes where its frame names {payload.Length}.");
            for (int done = 0; done < payload.Length;)
            {
                int read = RandomAccess.Read(file, payload.AsSpan(done), done);
                if (read == 0) throw new IOException($"tensor {ticket} in shared memory ended after {done} of {payload.Length} bytes.");
                done += read;
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or System.Security.SecurityException)
        {
            throw new IOException($"tensor {ticket} in shared memory could not be read: {e.Message}", e);
        }
        finally
        {
            Delete(ticket);
        }
    }

    public void Delete(Guid ticket)
    {
        try
        {
            File.Delete(PathOf(ticket));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Deletes payload files older than <paramref name="age"/>: ones whose frame never arrived (the sending
    /// silo died between file and header, or the receiver before reading it).</summary>
    public void DeleteOlderThan(TimeSpan age)
    {
        try
        {
            var before = DateTime.UtcNow - age;
            foreach (var file in new DirectoryInfo(_directory).EnumerateFiles(PayloadPrefix + "*"))
                if (file.LastWriteTimeUtc < before) file.Delete();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    public void Dispose()
    {
        _hold.Dispose();
        try
        {
            File.Delete(Path.Combine(_directory, Marker));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private static FileStreamOptions Creating()
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 0 };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = OwnerOnly;
        return options;
    }

    private string PathOf(Guid ticket) => Path.Combine(_directory, PayloadPrefix + ticket.ToString("N"));

    [GeneratedRegex("^headwise-channel-[0-9a-f]{32}$")]
    private static partial Regex MarkerName();
}
