using System.Diagnostics;

namespace Headwise.Bench;

/// <summary>Wall-clock timing of an action: warm-up calls, then repeated calls until enough time and runs have passed.</summary>
internal static class Timing
{
    public readonly record struct Result(double MedianMs, double MinMs, int Runs);

    public static Result Measure(Action action, double minSeconds = 1.0, int minRuns = 5, int maxRuns = 2000, int warmups = 3)
    {
        for (int i = 0; i < warmups; i++) action();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < maxRuns && (times.Count < minRuns || total.Elapsed.TotalSeconds < minSeconds))
        {
            long started = Stopwatch.GetTimestamp();
            action();
            times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        times.Sort();
        return new Result(times[times.Count / 2], times[0], times.Count);
    }

    /// <summary>
    /// Two actions timed in alternation (a, b, a, b…), so load from other processes falls on both alike;
    /// b is skipped (its result empty) when null.
    /// </summary>
    public static (Result A, Result? B) MeasurePair(Action a, Action? b, double minSeconds = 1.0, int minRuns = 5, int maxRuns = 2000, int warmups = 3)
    {
        for (int i = 0; i < warmups; i++) { a(); b?.Invoke(); }
        var timesA = new List<double>();
        var timesB = new List<double>();
        var total = Stopwatch.StartNew();
        while (timesA.Count < maxRuns && (timesA.Count < minRuns || total.Elapsed.TotalSeconds < minSeconds))
        {
            long started = Stopwatch.GetTimestamp();
            a();
            timesA.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            if (b is null) continue;
            started = Stopwatch.GetTimestamp();
            b();
            timesB.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        return (Summary(timesA), b is null ? null : Summary(timesB));
    }

    private static Result Summary(List<double> times)
    {
        times.Sort();
        return new Result(times[times.Count / 2], times[0], times.Count);
    }
}
