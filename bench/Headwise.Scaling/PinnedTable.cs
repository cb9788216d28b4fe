using System.Diagnostics;
using System.Globalization;
using Headwise.Client;

namespace Headwise.Scaling;

/// <summary>
/// The scale-out table of issue #11: the demo layer (GPT-2 small shape, 12 heads, not causal) through a .NET gRPC client
/// on this machine, with the silos pinned to cores by taskset: one silo on core 0, one silo on cores 0-1, two silos on a
/// core each, three silos unpinned; each against one silo on both cores and against the in-process layer, all measured in
/// this one run. Also the machine's own two-thread speed-up (two SMT siblings gain ~1.3×, two real cores ~2×).
/// </summary>
internal static class PinnedTable
{
    private sealed record Setup(string Name, int Silos, string?[] Cpus);

    public static async Task RunAsync(string siloDll, int[] tokenCounts, int repetitions)
    {
        var invariant = CultureInfo.InvariantCulture;
        var setups = new[]
        {
            new Setup("1 silo, 1 core", 1, ["0"]),
            new Setup("1 silo, 2 cores", 1, ["0,1"]),
            new Setup("2 silos, 1 core each", 2, ["0", "1"]),
            new Setup("3 silos, unpinned", 3, [null, null, null]),
        };
        var results = new Dictionary<(string, int), (double Median, double Best, string Mode, string Spread)>();
        foreach (var setup in setups)
        {
            await using var cluster = await ClusterUnderTest.StartAsync(siloDll, setup.Silos, setup.Cpus);
            await using var client = new GrpcAttentionClient(cluster.Silos[0].GrpcAddress);
            foreach (int tokens in tokenCounts)
            {
                results[(setup.Name, tokens)] = await MeasureAsync(client, tokens, repetitions);
                Console.Error.WriteLine($"measured {setup.Name}, T={tokens}");
            }
        }
        var anchors = tokenCounts.ToDictionary(t => t, t =>
        {
            var layer = new InProcessLayer(t);
            return (Two: layer.Measure(Environment.ProcessorCount, repetitions), One: layer.Measure(1, repetitions));
        });

        Console.WriteLine($"## Scale-out, pinned ({Environment.ProcessorCount} cores: {CpuModel()}), median of {repetitions} (best)\n");
        Console.WriteLine("| T | setup | heads per silo | W_O | ms | ÷ 1 silo 2 cores | ÷ 1 silo 1 core | ÷ in-process |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (int t in tokenCounts)
        {
            var two = results[("1 silo, 2 cores", t)].Median;
            var one = results[("1 silo, 1 core", t)].Median;
            var anchor = anchors[t].Two.Median;
            foreach (var setup in setups)
            {
                var r = results[(setup.Name, t)];
                Console.WriteLine(string.Create(invariant,
                    $"| {t} | {setup.Name} | {r.Spread} | {r.Mode} | {r.Median:F1} ({r.Best:F1}) | {r.Median / two:F2} | {r.Median / one:F2} | {r.Median / anchor:F2} |"));
            }
            Console.WriteLine(string.Create(invariant,
                $"| {t} | in-process layer, {Environment.ProcessorCount} threads (1 thread) | – | – | {anchors[t].Two.Median:F1} ({anchors[t].Two.Best:F1}) [{anchors[t].One.Median:F1}] | | | 1.00 |"));
        }
        Console.WriteLine();
        foreach (int t in tokenCounts)
            Console.WriteLine(string.Create(invariant,
                $"T = {t}: this machine's two-thread speed-up in-process {anchors[t].One.Median / anchors[t].Two.Median:F2}×; " +
                $"2 silos (1 core each) ÷ 1 silo (2 cores) = {results[("2 silos, 1 core each", t)].Median / results[("1 silo, 2 cores", t)].Median:F2}; " +
                $"2 silos ÷ 1 silo on 1 core = {results[("2 silos, 1 core each", t)].Median / results[("1 silo, 1 core", t)].Median:F2}; " +
                $"3 silos ÷ 1 silo = {results[("3 silos, unpinned", t)].Median / results[("1 silo, 2 cores", t)].Median:F2}; " +
                $"1 silo via gRPC ÷ in-process = {results[("1 silo, 2 cores", t)].Median / anchors[t].Two.Median:F2}"));
    }

    private static async Task<(double, double, string, string)> MeasureAsync(IAttentionClient client, int tokens, int repetitions)
    {
        var random = new Random(tokens);
        var input = new float[tokens * 768];
        for (int i = 0; i < input.Length; i++) input[i] = (float)(random.NextDouble() * 2 - 1);
        var request = new AttentionInput { Input = new FloatTensor(input, 1, tokens, 768) };
        AttentionOutput last = null!;
        await Warmup.RunAsync(async () => last = await client.ForwardAsync("demo", request), Warmup.Default);
        var times = new List<double>();
        for (int i = 0; i < repetitions; i++)
        {
            long started = Stopwatch.GetTimestamp();
            last = await client.ForwardAsync("demo", request);
            times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        times.Sort();
        string spread = string.Join("/", last.Heads.GroupBy(h => h.Silo).Select(g => g.Count()).OrderDescending());
        string mode = last.OutputProjection == Contracts.OutputProjectionMode.PartialSums ? "partial sums" : "gathered";
        return (times[times.Count / 2], times[0], mode, spread);
    }

    private static string CpuModel()
    {
        var line = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) : null;
        string flags = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) ?? "" : "";
        string width = flags.Contains(" avx512f", StringComparison.Ordinal) ? "AVX-512" : flags.Contains(" avx2", StringComparison.Ordinal) ? "AVX2" : "no AVX2";
        return $"{line?.Split(':', 2)[1].Trim() ?? "unknown"}, {width}";
    }
}
