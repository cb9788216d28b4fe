using System.Diagnostics;
using System.Globalization;

namespace Headwise.TestSupport;

/// <summary>
/// Runs a pass (or a decode bench's cell) until a fresh silo has settled: the benches time nothing before it. Three passes were not enough: perf of a silo after ~100 small passes still
/// spent a third of its samples in the JIT's background tier-up (Orleans, Kestrel, gRPC and OpenTelemetry have many
/// methods), which ran on the same two cores as the passes being timed. Five seconds were not enough either: a silo
/// profiled 8–20 s after its bench started (T = 1024) spent 35% of its samples in "Tiered Compilation". So passes run
/// for at least <paramref name="duration"/> and then, given the silos' web addresses, until their JIT is quiet: no method
/// compiled (the runtime meter's dotnet.jit.compiled_methods) over <see cref="QuietFor"/> of passes, for at most
/// <see cref="MostWait"/>.
/// </summary>
public static class Warmup
{
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan QuietFor = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan MostWait = TimeSpan.FromSeconds(90);
    private static readonly HttpClient Http = new();

    public static async Task RunAsync(Func<Task> pass, TimeSpan duration, IReadOnlyList<Uri>? silos = null, int minimumPasses = 5)
    {
        long started = Stopwatch.GetTimestamp();
        for (int i = 0; i < minimumPasses || Stopwatch.GetElapsedTime(started) < duration; i++) await pass();
        if (silos is not { Count: > 0 }) return;
        long compiled = await CompiledMethodsAsync(silos);
        long quietSince = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(quietSince) < QuietFor)
        {
            if (Stopwatch.GetElapsedTime(started) > MostWait)
            {
                Console.Error.WriteLine($"warm-up: the silos' JIT still compiled after {MostWait.TotalSeconds} s; measuring anyway.");
                return;
            }
            await pass();
            long now = await CompiledMethodsAsync(silos);
            if (now != compiled) (compiled, quietSince) = (now, Stopwatch.GetTimestamp());
        }
        Console.Error.WriteLine($"warm-up: the silos' JIT quiet after {Stopwatch.GetElapsedTime(started).TotalSeconds:F0} s");
    }

    // dotnet_jit_compiled_methods_total summed over the silos' Prometheus endpoints.
    private static async Task<long> CompiledMethodsAsync(IReadOnlyList<Uri> silos)
    {
        long total = 0;
        foreach (var silo in silos)
        {
            var text = await Http.GetStringAsync(new Uri(silo, "metrics"));
            foreach (var line in text.Split('\n'))
                if (line.StartsWith("dotnet_jit_compiled_methods_total", StringComparison.Ordinal))
                    total += (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        return total;
    }
}
