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

    private readonly Lock _lock = new();
    private readonly Dictionary<int, Stack<byte[]>> _free = [];
    // When each kept length was last rented or returned: a full pool gives up first the length no pass has used longest.
    private readonly Dictionary<int, long> _lastUse = [];
    private readonly long _maxBytes;
    private long _keptBytes, _clock;

    /// <param name="maxBytes">The most bytes kept for reuse at once; null: an eighth of the memory the GC may use (the
    /// container's, or the heap's hard limit), between 16 MiB and 256 MiB.</param>
    public TensorBuffers(long? maxBytes = null) => _maxBytes = maxBytes ?? DefaultMaxBytes();

    /// <summary>The most bytes kept for reuse at once.</summary>
    public long MaxBytes => _maxBytes;

    /// <summary>Bytes kept for reuse now.</summary>
    public long KeptBytes
    {
        get
        {
            lock (_lock) return _keptBytes;
        }
    }

    /// <summary>An array of exactly <paramref name="length"/> bytes whose contents are undefined; the caller writes all of it.</summary>
    public byte[] Rent(int length)
    {
        if (length >= MinimumBytes)
        {
            lock (_lock)
            {
                if (_free.TryGetValue(length, out var stack) && stack.TryPop(out var array))
                {
                    _keptBytes -= length;
                    _lastUse[length] = ++_clock;
                    if (stack.Count == 0) Forget(length);
                    return array;
                }
            }
        }
        return GC.AllocateUninitializedArray<byte>(length);
    }

    /// <summary>
    /// Gives <paramref name="array"/> back for reuse. The caller must be its last reader and writer, and return it once:
    /// the next <see cref="Rent"/> of its length hands it to another pass. Past the cap, arrays of the lengths used least
    /// recently are let go to make room (passes of many different lengths would otherwise fill the pool for good with
    /// arrays no pass rents again); if that is not enough, this one is.
    /// </summary>
    public void Return(byte[]? array)
    {
        if (array is null || array.Length < MinimumBytes || array.Length > _maxBytes) return;
        int length = array.Length;
        lock (_lock)
        {
            while (_keptBytes + length > _maxBytes && LeastRecentlyUsedOther(length) is { } oldest)
            {
                var stack = _free[oldest];
                stack.Pop();
                _keptBytes -= oldest;
                if (stack.Count == 0) Forget(oldest);
            }
            if (_keptBytes + length > _maxBytes) return;
            if (!_free.TryGetValue(length, out var own)) _free[length] = own = new Stack<byte[]>();
            own.Push(array);
            _keptBytes += length;
            _lastUse[length] = ++_clock;
        }
    }

    // Only lengths with arrays kept are remembered, so passes of ever new lengths do not grow these tables.
    private void Forget(int length)
    {
        _free.Remove(length);
        _lastUse.Remove(length);
    }

    private int? LeastRecentlyUsedOther(int length)
    {
        int? oldest = null;
        foreach (var (other, _) in _free)
            if (other != length && (oldest is null || _lastUse[other] < _lastUse[oldest.Value])) oldest = other;
        return oldest;
    }

    private static long DefaultMaxBytes() =>
        Math.Clamp(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 8, 16L << 20, 256L << 20);
}
