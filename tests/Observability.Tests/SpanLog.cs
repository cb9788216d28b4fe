using System.Collections;
using System.Diagnostics;

namespace Headwise.Observability.Tests;

/// <summary>
/// The spans the InMemory exporter received. Spans end on many threads at once (heads on three silos), so
/// the exporter's list is guarded and read as snapshots.
/// </summary>
public sealed class SpanLog : ICollection<Activity>
{
    private readonly List<Activity> _spans = [];

    public IReadOnlyList<Activity> Snapshot()
    {
        lock (_spans) return _spans.ToList();
    }

    public IReadOnlyList<Activity> OfTrace(ActivityTraceId traceId) => Snapshot().Where(s => s.TraceId == traceId).ToList();

    /// <summary>Waits until <paramref name="done"/> holds for the spans so far: the gateway's span ends after the reply is sent.</summary>
    public async Task<IReadOnlyList<Activity>> WaitFor(Func<IReadOnlyList<Activity>, bool> done, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var spans = Snapshot();
            if (done(spans)) return spans;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"waited 10 s for {what}; have {spans.Count} spans.");
            await Task.Delay(20);
        }
    }

    public void Add(Activity item)
    {
        lock (_spans) _spans.Add(item);
    }

    public void Clear()
    {
        lock (_spans) _spans.Clear();
    }

    public bool Contains(Activity item)
    {
        lock (_spans) return _spans.Contains(item);
    }

    public void CopyTo(Activity[] array, int arrayIndex)
    {
        lock (_spans) _spans.CopyTo(array, arrayIndex);
    }

    public bool Remove(Activity item)
    {
        lock (_spans) return _spans.Remove(item);
    }

    public int Count
    {
        get { lock (_spans) return _spans.Count; }
    }

    public bool IsReadOnly => false;

    public IEnumerator<Activity> GetEnumerator() => Snapshot().GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
