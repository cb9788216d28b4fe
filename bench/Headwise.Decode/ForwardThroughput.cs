using System.Diagnostics;
using System.Globalization;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Decode;

/// <summary>
/// Forward passes under load (issue #14, "the same for forwards"): N callers each send `passes` forwards of T tokens
/// (batch 1, causal, the demo layer) one after another, all N at once, on one silo with forward batching off and on
/// (Headwise__ForwardBatching). Both silos run side by side, warmed until their JIT is quiet, and each cell runs on them
/// in the order A, B, B, A; a setting's figures are its two runs together. Tokens/s is all tokens over the wall time.
/// </summary>
internal static class ForwardThroughput
{
    private sealed record Cell(bool Batching, int Tokens, int Callers, double TokensPerSecond, LatencySamples Latency);

    public static async Task<int> RunAsync(string siloDll, int[] tokenCounts, int[] callerCounts, int passes, CancellationToken cancellationToken)
    {
        Console.WriteLine($"forward throughput: {Environment.ProcessorCount} cores, {ThroughputRunner.CpuModel()}, load {LatencySamples.LoadAverage()}; " +
                          $"{passes} forwards per caller per cell; the bench client runs on the same machine as the silo");
        var silos = new List<(bool Batching, BenchCluster Cluster, GrpcAttentionClient Client)>();
        var cells = new List<Cell>();
        try
        {
            foreach (bool batching in new[] { false, true })
            {
                var cluster = await BenchCluster.StartAsync(siloDll, 1,
                    new Dictionary<string, string> { ["Headwise__ForwardBatching"] = batching ? "true" : "false" }, cancellationToken);
                silos.Add((batching, cluster, new GrpcAttentionClient(cluster.GrpcAddress)));
            }
            foreach (var (_, cluster, client) in silos)
                await Warmup.RunAsync(async () =>
                {
                    foreach (int tokens in tokenCounts) await Measure(client, tokens, 4, 4, cancellationToken);
                }, Warmup.Default, cluster.WebAddresses, minimumPasses: 1);

            foreach (int tokens in tokenCounts)
                foreach (int callers in callerCounts)
                {
                    var runs = new Dictionary<bool, Cell>();
                    foreach (var (batching, _, client) in silos.Concat(Enumerable.Reverse(silos)))
                    {
                        var (tokensPerSecond, latency) = await Measure(client, tokens, callers, passes, cancellationToken);
                        Console.WriteLine($"  batching {(batching ? "on" : "off")}, T {tokens}, {callers} callers: {tokensPerSecond:F0} tokens/s, " +
                                          $"p50 {LatencySamples.Ms(latency.P50)} ms, p99 {LatencySamples.Ms(latency.P99)} ms; load {LatencySamples.LoadAverage()}");
                        runs[batching] = runs.TryGetValue(batching, out var earlier)
                            ? earlier with { TokensPerSecond = (earlier.TokensPerSecond + tokensPerSecond) / 2, Latency = earlier.Latency.With(latency) }
                            : new Cell(batching, tokens, callers, tokensPerSecond, latency);
                    }
                    cells.AddRange(runs.Values);
                }
        }
        finally
        {
            foreach (var (_, cluster, client) in silos)
            {
                await client.DisposeAsync();
                await cluster.DisposeAsync();
            }
        }

        Console.WriteLine("\n| T | callers | tokens/s off | tokens/s on | on ÷ off | p50 off ms | p50 on ms | p99 off ms | p99 on ms |");
        Console.WriteLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var group in cells.GroupBy(c => (c.Tokens, c.Callers)))
        {
            var off = group.Single(c => !c.Batching);
            var on = group.Single(c => c.Batching);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {group.Key.Tokens} | {group.Key.Callers} | {off.TokensPerSecond:F0} | {on.TokensPerSecond:F0} | {on.TokensPerSecond / off.TokensPerSecond:F2} | " +
                $"{off.Latency.P50:F2} | {on.Latency.P50:F2} | {off.Latency.P99:F2} | {on.Latency.P99:F2} |"));
        }
        Console.WriteLine($"load average after: {LatencySamples.LoadAverage()}");
        return 0;
    }

    // N callers at once, each sending its forwards one after another.
    private static async Task<(double TokensPerSecond, LatencySamples Latency)> Measure(IAttentionClient client, int tokens, int callers, int passes,
        CancellationToken cancellationToken)
    {
        var spec = (await client.GetModelAsync("demo", cancellationToken)).Spec;
        var random = new Random(tokens * 100 + callers);
        var inputs = Enumerable.Range(0, callers).Select(_ => new FloatTensor(
            Enumerable.Range(0, tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), 1, tokens, spec.ModelDim)).ToArray();
        var latencies = new double[callers][];
        long started = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(async c =>
        {
            var own = latencies[c] = new double[passes];
            for (int p = 0; p < passes; p++)
            {
                long before = Stopwatch.GetTimestamp();
                await client.ForwardAsync("demo", new AttentionInput { Input = inputs[c], Causal = true }, cancellationToken);
                own[p] = Stopwatch.GetElapsedTime(before).TotalMilliseconds;
            }
        }));
        double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        return ((double)callers * passes * tokens / seconds, new LatencySamples(latencies.SelectMany(l => l)));
    }
}
