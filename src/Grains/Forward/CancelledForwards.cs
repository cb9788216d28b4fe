using System.Collections.Concurrent;
using System.Diagnostics;

namespace Headwise.Grains.Forward;

/// <summary>
/// The forward passes called off on this silo, which its head grains check between sequences. One per silo;
/// entries are forgotten after a minute, long after any head of that pass has stopped.
/// </summary>
public sealed class CancelledForwards
{
    private static readonly TimeSpan Keep = TimeSpan.FromMinutes(1);
    private readonly ConcurrentDictionary<Guid, long> _cancelled = new();

    public void Cancel(Guid forwardId)
    {
        long now = Stopwatch.GetTimestamp();
        _cancelled[forwardId] = now;
        foreach (var (id, at) in _cancelled)
        {
            if (Stopwatch.GetElapsedTime(at, now) > Keep) _cancelled.TryRemove(id, out _);
        }
    }

    public bool IsCancelled(Guid forwardId) => forwardId != Guid.Empty && _cancelled.ContainsKey(forwardId);

    /// <summary>Passes called off here in the last minute or so.</summary>
    public int Count => _cancelled.Count;
}
