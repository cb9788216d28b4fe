using System.Diagnostics;
using System.Globalization;
using Headwise.Bench;
using Headwise.Client;
using Headwise.Contracts;
using Headwise.Kernels;
using Headwise.TestSupport;

namespace Headwise.Decode;

/// <summary>What one throughput run covers.</summary>
internal sealed record ThroughputPlan(string SiloDll, int[] Silos, int[] Contexts, int[] Concurrency, bool[] Batching, string[] Transports, int Steps);

/// <summary>One cell of the table: N sessions decoding at once at one context, on one cluster.</summary>
internal sealed record ThroughputCell(int Silos, bool Batching, string Transport, int Context, int Sessions, double TokensPerSecond, LatencySamples Steps);

/// <summary>
/// Decode throughput under load (issue #14): N sessions decode one token per step, all at once, each from its own
/// context, on one silo and on several, with cross-session batching off and on, in one run. Every cell opens N sessions,
/// prefills each to the context (not timed), lets every session take one untimed step, then times `steps` steps of every
/// session, by unary Decode calls or over one DecodeStream per session: tokens/s is all steps over the wall time of the
/// cell, the latencies are each step's at the client. Beside them: the floors (a unary call and a stream ping, neither
/// doing arithmetic) and the in-process layer step, measured in the same run. The clusters of the batching settings run
/// side by side, and each cell runs on them in the order A, B, B, A: each setting's figures are its two runs together
/// (the mean tokens/s, the latencies of both).
/// </summary>
internal static class ThroughputRunner
{
    private const string Model = "demo";

    public static async Task<int> Run(ThroughputPlan plan, CancellationToken cancellationToken)
    {
        Console.WriteLine($"decode throughput: {Environment.ProcessorCount} cores, {CpuModel()}, load {LatencySamples.LoadAverage()}; " +
                          $"{plan.Steps} timed steps per session per cell; the bench client runs on the same machine as the silos");
        var anchors = new Dictionary<int, double>();
        foreach (int context in plan.Contexts)
        {
            var step = new LayerStepTiming(new SimdKernel(), context);
            step.Measure(parallel: true);
            anchors[context] = step.Measure(parallel: true);
            Console.WriteLine($"in-process layer step at context {context} (12 groups + W_O, all cores): median {LatencySamples.Ms(anchors[context])} ms");
        }

        var cells = new List<ThroughputCell>();
        foreach (int silos in plan.Silos)
        {
            // One cluster per batching setting, all started and warmed before any cell is timed, and each cell run on
            // them as A, B, B, A. Run one after another, the second cluster's cells read slower whatever its setting
            // (docs/performance.md): the order, not the setting, then decided the on ÷ off ratios.
            var clusters = new List<(bool Batching, BenchCluster Cluster, GrpcAttentionClient Client)>();
            try
            {
                foreach (bool batching in plan.Batching)
                {
                    var cluster = await BenchCluster.StartAsync(plan.SiloDll, silos,
                        new Dictionary<string, string> { ["Headwise__DecodeBatching"] = batching ? "true" : "false" }, cancellationToken);
                    clusters.Add((batching, cluster, new GrpcAttentionClient(cluster.GrpcAddress)));
                }
                foreach (var (batching, cluster, client) in clusters)
                {
                    // Warm-up (JIT, connections, activations): small cells of every transport until the silos' JIT is quiet.
                    // One such cell was not enough: a silo profiled in the first timed cell after it spent 29% of its
                    // samples compiling (the "Tiered Compilation" thread and libclrjit) and ran methods still instrumented.
                    await Warmup.RunAsync(async () =>
                    {
                        foreach (string transport in plan.Transports)
                            await Cell(client, silos, batching, transport, 64, 4, 16, cancellationToken);
                    }, Warmup.Default, cluster.WebAddresses, minimumPasses: 1);
                    var floor = await UnaryFloor(client, cancellationToken);
                    var streamFloor = await StreamFloor(client, cancellationToken);
                    Console.WriteLine($"silos {silos}, batching {(batching ? "on" : "off")}: no-op floors p50 (min): unary (ListModels) " +
                                      $"{LatencySamples.Ms(floor.P50)} ({LatencySamples.Ms(floor.Min)}) ms, stream ping {LatencySamples.Ms(streamFloor.P50)} " +
                                      $"({LatencySamples.Ms(streamFloor.Min)}) ms");
                }
                foreach (string transport in plan.Transports)
                    foreach (int context in plan.Contexts)
                        foreach (int sessions in plan.Concurrency)
                        {
                            // A, B, B, A: each setting once early and once late in the cell; its two runs count as one.
                            var runs = new Dictionary<bool, ThroughputCell>();
                            foreach (var (batching, _, client) in clusters.Concat(Enumerable.Reverse(clusters)))
                            {
                                ThroughputCell cell;
                                try
                                {
                                    cell = await Cell(client, silos, batching, transport, context, sessions, plan.Steps, cancellationToken);
                                }
                                catch (HeadwiseException e)
                                {
                                    // A cell the cluster could not serve is a result too (printed as "–" in the table).
                                    Console.WriteLine($"  batching {(batching ? "on" : "off")}, {transport}, context {context}, {sessions} sessions: FAILED {e.Code}: {e.Message}");
                                    continue;
                                }
                                Console.WriteLine($"  batching {(batching ? "on" : "off")}, {transport}, context {context}, {sessions} sessions: {cell.TokensPerSecond:F0} tokens/s, " +
                                                  $"p50 {LatencySamples.Ms(cell.Steps.P50)} ms, p99 {LatencySamples.Ms(cell.Steps.P99)} ms; load {LatencySamples.LoadAverage()}");
                                runs[batching] = runs.TryGetValue(batching, out var earlier)
                                    ? cell with { TokensPerSecond = (earlier.TokensPerSecond + cell.TokensPerSecond) / 2, Steps = earlier.Steps.With(cell.Steps) }
                                    : cell;
                            }
                            cells.AddRange(runs.Values);
                        }
            }
            finally
            {
                foreach (var (_, cluster, client) in clusters)
                {
                    await client.DisposeAsync();
                    await cluster.DisposeAsync();
                }
            }
        }
        PrintTable(cells, plan);
        return 0;
    }

    private static async Task<ThroughputCell> Cell(IAttentionClient client, int silos, bool batching, string transport, int context, int sessions,
        int steps, CancellationToken cancellationToken)
    {
        var random = new Random(context * 1000 + sessions);
        var spec = (await client.GetModelAsync(Model, cancellationToken)).Spec;
        FloatTensor Tokens(int count) =>
            new(Enumerable.Range(0, count * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), 1, count, spec.ModelDim);

        var ids = new string[sessions];
        var inputs = Enumerable.Range(0, sessions).Select(_ => Enumerable.Range(0, steps + 1).Select(_ => Tokens(1)).ToArray()).ToArray();
        var prefill = Enumerable.Range(0, sessions).Select(_ => context > 1 ? Tokens(context - 1) : null).ToArray();
        await Parallel.ForEachAsync(Enumerable.Range(0, sessions), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken },
            async (s, token) =>
            {
                ids[s] = (await client.OpenSessionAsync(Model, 0, context + steps + 1, token)).Id;
                if (prefill[s] is { } x) await client.DecodeAsync(ids[s], x, token);
            });
        var streams = new DecodeStream?[sessions];
        try
        {
            if (transport == "stream")
                for (int s = 0; s < sessions; s++) streams[s] = await client.OpenDecodeStreamAsync(ids[s], cancellationToken);
            Task<DecodeOutput> Step(int s, FloatTensor x) =>
                streams[s] is { } stream ? stream.StepAsync(x, cancellationToken) : client.DecodeAsync(ids[s], x, cancellationToken);
            // Every session's first step untimed: its caches grow, and the cell starts with all sessions in flight.
            await Task.WhenAll(Enumerable.Range(0, sessions).Select(s => Step(s, inputs[s][0])));
            var latencies = new double[sessions][];
            long started = Stopwatch.GetTimestamp();
            await Task.WhenAll(Enumerable.Range(0, sessions).Select(async s =>
            {
                var own = latencies[s] = new double[steps];
                for (int step = 0; step < steps; step++)
                {
                    long before = Stopwatch.GetTimestamp();
                    await Step(s, inputs[s][step + 1]);
                    own[step] = Stopwatch.GetElapsedTime(before).TotalMilliseconds;
                }
            }));
            double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            return new ThroughputCell(silos, batching, transport, context, sessions, sessions * steps / seconds,
                new LatencySamples(latencies.SelectMany(l => l)));
        }
        finally
        {
            foreach (var stream in streams)
                if (stream is not null) await stream.DisposeAsync();
            await Parallel.ForEachAsync(ids.Where(id => id is not null), cancellationToken, async (id, token) => await client.CloseSessionAsync(id, token));
        }
    }

    // A ping on an open DecodeStream: the gateway answers it in order without any grain call.
    private static async Task<LatencySamples> StreamFloor(IAttentionClient client, CancellationToken cancellationToken)
    {
        var session = await client.OpenSessionAsync(Model, 0, 16, cancellationToken);
        try
        {
            await using var stream = await client.OpenDecodeStreamAsync(session.Id, cancellationToken);
            var samples = new List<double>();
            for (int i = 0; i < 20 + 200; i++)
            {
                long started = Stopwatch.GetTimestamp();
                await stream.PingAsync(cancellationToken);
                if (i >= 20) samples.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            return new LatencySamples(samples);
        }
        finally
        {
            await client.CloseSessionAsync(session.Id, cancellationToken);
        }
    }

    private static async Task<LatencySamples> UnaryFloor(IAttentionClient client, CancellationToken cancellationToken)
    {
        var samples = new List<double>();
        for (int i = 0; i < 20 + 200; i++)
        {
            long started = Stopwatch.GetTimestamp();
            await client.ListModelsAsync(cancellationToken);
            if (i >= 20) samples.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        return new LatencySamples(samples);
    }

    private static void PrintTable(List<ThroughputCell> cells, ThroughputPlan plan)
    {
        Console.WriteLine();
        Console.WriteLine("| silos | transport | context | sessions | tokens/s off | tokens/s on | on ÷ off | p50 off ms | p50 on ms | p99 off ms | p99 on ms | p99 on ÷ 1-session p50 on |");
        Console.WriteLine("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (int silos in plan.Silos)
            foreach (string transport in plan.Transports)
                foreach (int context in plan.Contexts)
                    foreach (int sessions in plan.Concurrency)
                    {
                        bool Same(ThroughputCell c) => c.Silos == silos && c.Transport == transport && c.Context == context;
                        var off = cells.FirstOrDefault(c => Same(c) && c.Sessions == sessions && !c.Batching);
                        var on = cells.FirstOrDefault(c => Same(c) && c.Sessions == sessions && c.Batching);
                        var single = cells.FirstOrDefault(c => Same(c) && c.Sessions == plan.Concurrency.Min() && c.Batching);
                        string F(double? value, string format) => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "–";
                        Console.WriteLine($"| {silos} | {transport} | {context} | {sessions} | {F(off?.TokensPerSecond, "F0")} | {F(on?.TokensPerSecond, "F0")} | " +
                                          $"{F(on is not null && off is not null ? on.TokensPerSecond / off.TokensPerSecond : null, "F2")} | " +
                                          $"{F(off?.Steps.P50, "F2")} | {F(on?.Steps.P50, "F2")} | {F(off?.Steps.P99, "F2")} | {F(on?.Steps.P99, "F2")} | " +
                                          $"{F(on is not null && single is not null ? on.Steps.P99 / single.Steps.P50 : null, "F2")} |");
                    }
        Console.WriteLine($"load average after: {LatencySamples.LoadAverage()}");
    }

    internal static string CpuModel()
    {
        if (!File.Exists("/proc/cpuinfo")) return "cpu unknown";
        var lines = File.ReadAllLines("/proc/cpuinfo");
        string model = lines.FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "cpu unknown";
        string flags = lines.FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) ?? "";
        return $"{model}, {(flags.Contains(" avx512f", StringComparison.Ordinal) ? "AVX-512" : flags.Contains(" avx2", StringComparison.Ordinal) ? "AVX2" : "no AVX2")}";
    }
}
