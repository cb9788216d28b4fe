using System.Collections.Concurrent;
using System.Diagnostics;

namespace Headwise.Grains.Forward;

/// <summary>
/// What one batcher's batches of each layer looked like on this silo (<see cref="StepBatcher"/>'s decode steps,
/// <see cref="ForwardBatcher"/>'s forwards), for the dashboard and for tests: the last batch, the mean batch size and
/// the tokens/s of the last <see cref="Window"/>, and totals since start. The same passes are measured as histograms by
/// the telemetry (headwise.decode.batch.size, headwise.forward.batch.size); this keeps the few numbers a page shows
/// without a metrics backend.
/// </summary>
public sealed class BatchStats
{
    /// <summary>How far back the recent mean and tokens/s look.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    private sealed class Layer
    {
        public readonly Lock Lock = new();
        public readonly Queue<(long At, int Steps, int Rows)> Recent = new();
        public long Batches, Steps, Rows;
        public int Last, Largest;
    }

    private readonly ConcurrentDictionary<string, Layer> _layers = new(StringComparer.Ordinal);

    /// <summary>One pass of <paramref name="steps"/> decode steps (or forwards) with <paramref name="rows"/> new rows in all.</summary>
    public void Record(string layer, int steps, int rows)
    {
        var entry = _layers.GetOrAdd(layer, _ => new Layer());
        long now = Stopwatch.GetTimestamp();
        lock (entry.Lock)
        {
            entry.Batches++;
            entry.Steps += steps;
            entry.Rows += rows;
            entry.Last = steps;
            entry.Largest = Math.Max(entry.Largest, steps);
            entry.Recent.Enqueue((now, steps, rows));
            Forget(entry, now);
        }
    }

    /// <summary>Every layer this silo batched steps of, by layer key ("model/layer").</summary>
    public BatchView[] Snapshot()
    {
        long now = Stopwatch.GetTimestamp();
        var views = new List<BatchView>();
        foreach (var (layer, entry) in _layers)
        {
            lock (entry.Lock)
            {
                Forget(entry, now);
                long batches = entry.Recent.Count, steps = 0, rows = 0;
                foreach (var (_, s, r) in entry.Recent)
                {
                    steps += s;
                    rows += r;
                }
                views.Add(new BatchView
                {
                    Layer = layer,
                    Batches = entry.Batches,
                    Steps = entry.Steps,
                    Rows = entry.Rows,
                    LastSize = entry.Last,
                    LargestSize = entry.Largest,
                    RecentMeanSize = batches == 0 ? 0 : (double)steps / batches,
                    RecentTokensPerSecond = rows / Window.TotalSeconds,
                });
            }
        }
        return views.OrderBy(v => v.Layer, StringComparer.Ordinal).ToArray();
    }

    private static void Forget(Layer entry, long now)
    {
        while (entry.Recent.Count > 0 && Stopwatch.GetElapsedTime(entry.Recent.Peek().At, now) > Window) entry.Recent.Dequeue();
    }
}

/// <summary>A silo's batches of one layer, of decode steps or of forwards (see <see cref="BatchStats"/>).</summary>
[GenerateSerializer, Immutable, Alias("headwise.decode-batch-view")]
public sealed record BatchView
{
    /// <summary>"model/layer".</summary>
    [Id(0)] public required string Layer { get; init; }
    /// <summary>Passes (batches) since the silo started; an unbatched step counts as a batch of one.</summary>
    [Id(1)] public long Batches { get; init; }
    /// <summary>Decode steps (or forwards) those passes computed.</summary>
    [Id(2)] public long Steps { get; init; }
    /// <summary>New rows (sequences × tokens) those steps took in.</summary>
    [Id(3)] public long Rows { get; init; }
    /// <summary>Steps in the newest pass.</summary>
    [Id(4)] public int LastSize { get; init; }
    /// <summary>Steps in the largest pass since start.</summary>
    [Id(5)] public int LargestSize { get; init; }
    /// <summary>Mean steps per pass over the last 10 s (0 when none).</summary>
    [Id(6)] public double RecentMeanSize { get; init; }
    /// <summary>New rows per second over the last 10 s: this silo's decode tokens/s for the layer.</summary>
    [Id(7)] public double RecentTokensPerSecond { get; init; }
}
