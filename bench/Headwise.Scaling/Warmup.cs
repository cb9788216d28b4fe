using System.Diagnostics;

namespace Headwise.Scaling;

/// <summary>
/// Runs a pass until a fresh silo has settled. Three passes were not enough: perf of a silo after ~100 small passes still
/// spent a third of its samples in the JIT's background tier-up (Orleans, Kestrel, gRPC and OpenTelemetry have many
/// methods), which ran on the same two cores as the passes being timed. Passes for at least <paramref name="duration"/>.
/// </summary>
internal static class Warmup
{
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(5);

    public static async Task RunAsync(Func<Task> pass, TimeSpan duration, int minimumPasses = 5)
    {
        long started = Stopwatch.GetTimestamp();
        for (int i = 0; i < minimumPasses || Stopwatch.GetElapsedTime(started) < duration; i++) await pass();
    }
}
