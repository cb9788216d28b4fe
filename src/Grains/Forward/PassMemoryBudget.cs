using Headwise.Contracts;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Forward;

/// <summary>
/// Bytes the forward passes coordinated on this silo may hold at once (Headwise__PassMemoryBytes; by default a quarter of
/// the container's memory). Each limit on one request (MaxRequestBytes, MaxResponseBytes) holds for one pass, but several
/// large passes at once ran a silo with a 512 MiB heap out of memory inside Orleans' messaging (a connection dropped:
/// UNAVAILABLE and INTERNAL for passes each of which was legal). A pass reserves about three times its X and its answer
/// (the request, the partial sums arriving, the answer on its way out) before it starts, and waits, first come first
/// served, while others hold the budget; one that could never fit is RESOURCE_EXHAUSTED at once, naming the setting.
/// </summary>
public sealed class PassMemoryBudget(IOptions<ForwardLimits> limits)
{
    /// <summary>How many copies of X and of the answer a pass is counted for.</summary>
    public const int Copies = 3;

    /// <summary>Longest a pass waits for room before it is refused.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(30);

    private readonly Lock _lock = new();
    private readonly LinkedList<(long Bytes, TaskCompletionSource Ready)> _waiting = new();
    private long _held;

    public long Capacity => limits.Value.PassMemoryBytes;

    /// <summary>Bytes held by passes now (for metrics and tests).</summary>
    public long Held
    {
        get
        {
            lock (_lock) return _held;
        }
    }

    /// <summary>Reserves <paramref name="bytes"/> for a pass; dispose the result when the pass is over.</summary>
    public async Task<IDisposable> ReserveAsync(long bytes, CancellationToken cancellationToken)
    {
        long capacity = Capacity;
        if (bytes > capacity)
            throw new HeadwiseException(ErrorCode.ResourceExhausted,
                $"the pass needs about {bytes} bytes in memory ({Copies} × its input and answer); this silo allows {capacity} for passes " +
                "at once (Headwise__PassMemoryBytes). Send fewer sequences or tokens per call.");
        TaskCompletionSource? ready = null;
        LinkedListNode<(long, TaskCompletionSource)>? node = null;
        lock (_lock)
        {
            if (_waiting.Count == 0 && _held + bytes <= capacity) _held += bytes;
            else
            {
                ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                node = _waiting.AddLast((bytes, ready));
            }
        }
        if (ready is not null)
        {
            try
            {
                await ready.Task.WaitAsync(MaxWait, cancellationToken);
            }
            catch (Exception e) when (e is TimeoutException or OperationCanceledException)
            {
                lock (_lock)
                {
                    // Granted in the same instant: keep it, the caller's pass goes on (or releases it at once below).
                    if (!ready.Task.IsCompleted) _waiting.Remove(node!);
                }
                // A smaller pass waiting behind this one may fit now.
                Release(0);
                if (!ready.Task.IsCompleted)
                {
                    if (e is TimeoutException)
                        throw new HeadwiseException(ErrorCode.ResourceExhausted,
                            $"this silo's passes held {Held} of its {capacity} bytes (Headwise__PassMemoryBytes) for {MaxWait.TotalSeconds:F0} s; retry later.");
                    throw;
                }
            }
        }
        return new Reservation(this, bytes);
    }

    private void Release(long bytes)
    {
        var granted = new List<TaskCompletionSource>();
        lock (_lock)
        {
            _held -= bytes;
            while (_waiting.First is { } first && _held + first.Value.Bytes <= Capacity)
            {
                _held += first.Value.Bytes;
                _waiting.RemoveFirst();
                granted.Add(first.Value.Ready);
            }
        }
        foreach (var ready in granted) ready.TrySetResult();
    }

    private sealed class Reservation(PassMemoryBudget budget, long bytes) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) budget.Release(bytes);
        }
    }
}
