using System.Collections.Concurrent;

namespace Headwise.Grains.Forward;

/// <summary>
/// Reused byte arrays of exact lengths for the megabyte tensors of a forward pass: X copied out of shared memory or read
/// off the tensor channel, and the partial sums of W_O. A fresh large array is fresh memory: the silo took about 460
/// minor page faults a pass writing into them (W_O's output and X's copy were 99% of them), and on a virtualised host a
/// fault costs microseconds, so W_O ran at half speed on the median pass. An array comes back here only from the one
/// place that knows nothing reads it any more; one that is not returned is simply collected. Only a pass that succeeded
/// returns its X: a failed one may leave heads still reading it. The one reader that can outlive a successful pass is
/// the send of X to a child silo whose answer came too late and was replaced by a rescue (<c>HeadRescue</c>); what that
/// child computes from a reused buffer is dropped with its answer.
/// </summary>
public sealed class TensorBuffers
{
    /// <summary>Arrays below this length are not kept: the GC's young generation serves them from warm memory.</summary>
    public const int MinimumBytes = 64 * 1024;

    private readonly ConcurrentDictionary<int, ConcurrentStack<byte[]>> _free = new();
    private readonly long _maxBytes;
    private long _keptBytes;

    /// <param name="maxBytes">The most bytes kept for reuse at once; arrays returned past it are left to the GC.</param>
    public TensorBuffers(long maxBytes = 256L * 1024 * 1024) => _maxBytes = maxBytes;

    /// <summary>Bytes kept for reuse now.</summary>
    public long KeptBytes => Interlocked.Read(ref _keptBytes);

    /// <summary>An array of exactly <paramref name="length"/> bytes whose contents are undefined; the caller writes all of it.</summary>
    public byte[] Rent(int length)
    {
        if (length >= MinimumBytes && _free.TryGetValue(length, out var stack) && stack.TryPop(out var array))
        {
            Interlocked.Add(ref _keptBytes, -length);
            return array;
        }
        return GC.AllocateUninitializedArray<byte>(length);
    }

    /// <summary>
    /// Gives <paramref name="array"/> back for reuse. The caller must be its last reader and writer, and return it once:
    /// the next <see cref="Rent"/> of its length hands it to another pass.
    /// </summary>
    public void Return(byte[]? array)
    {
        if (array is null || array.Length < MinimumBytes) return;
        if (Interlocked.Add(ref _keptBytes, array.Length) > _maxBytes)
        {
            Interlocked.Add(ref _keptBytes, -array.Length);
            return;
        }
        _free.GetOrAdd(array.Length, _ => new ConcurrentStack<byte[]>()).Push(array);
    }
}
