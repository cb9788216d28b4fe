using System.Diagnostics;
using System.Globalization;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Scaling;

/// <summary>
/// The scale-out table of issue #11: the demo layer (GPT-2 small shape, 12 heads, not causal) through a .NET gRPC client
/// on this machine, with the silos pinned to cores by taskset: one silo on core 0, one silo on cores 0-1, two silos on a
/// core each, three silos unpinned; each against one silo on both cores and against the in-process layer, all measured in
/// this one run. Also the machine's own two-thread speed-up (two SMT siblings gain ~1.3×, two real cores ~2×). Every setup
/// is measured twice, interleaved call by call: tensors inline in the gRPC messages, and through shared memory
/// (<see cref="SharedMemoryMode.On"/>: X and Y in /dev/shm between the client and the first silo, the call carrying
/// references; silo to silo they still cross the tensor channel), and a third time inline with Y written into one buffer the
/// caller reuses (the SDK's <c>ForwardAsync(model, input, output)</c>: no new Y array per call on the client). With
/// --one-silo only one silo on two cores is measured, and the in-process layer takes its turn between their calls (its
/// one-thread figure comes after).
/// </summary>
internal static class PinnedTable
{
    private sealed record Setup(string Name, int Silos, string?[] Cpus);

    private static string Shared(string setup) => setup + ", shared memory";

    private static string IntoBuffer(string setup) => setup + ", Y into a reused buffer";

    // One way of calling a setup's first silo: the SDK's client, and the buffer Y goes into when the caller reuses one.
    private sealed record Caller(GrpcAttentionClient Client, float[]? Output)
    {
        public Task<AttentionOutput> ForwardAsync(AttentionInput input) =>
            Output is null ? Client.ForwardAsync("demo", input) : Client.ForwardAsync("demo", input, Output);
    }

    // Inline, shared memory, inline into a reused buffer: the order of every setup's rows.
    private static Caller[] Callers(Uri gateway, int largestTokens) =>
    [
        new(new GrpcAttentionClient(gateway), null),
        new(new GrpcAttentionClient(gateway, new GrpcAttentionClientOptions { SharedMemory = SharedMemoryMode.On }), null),
        new(new GrpcAttentionClient(gateway), new float[largestTokens * 768]),
    ];

    /// <param name="oneSiloOnly">Only one silo on two cores, inline and shared memory, and the in-process anchor.</param>
    /// <param name="twoSilosOnly">Only one silo on two cores and two silos on a core each (the first target's ratio),
    /// e.g. to compare silo settings passed in the environment.</param>
    /// <param name="paired">Run every setup's cluster at once and interleave their calls too (setup by setup, call by call),
    /// instead of one setup after another: a drift of the machine's speed between setups (on a shared VM the same setup
    /// read 10–20% apart from one run to the next) then hits every row alike, and the ratios compare calls made moments
    /// apart. The idle clusters stay up meanwhile, and the in-process layer takes its turn after each round of calls.</param>
    public static async Task RunAsync(string siloDll, int[] tokenCounts, int repetitions, bool oneSiloOnly = false, bool twoSilosOnly = false,
        bool paired = false)
    {
        var invariant = CultureInfo.InvariantCulture;
        var all = new[]
        {
            new Setup("1 silo, 1 core", 1, ["0"]),
            new Setup("1 silo, 2 cores", 1, ["0,1"]),
            new Setup("2 silos, 1 core each", 2, ["0", "1"]),
            new Setup("3 silos, unpinned", 3, [null, null, null]),
        };
        var setups = oneSiloOnly ? all.Where(s => s.Name == "1 silo, 2 cores").ToArray()
            : twoSilosOnly ? all.Where(s => s.Name is "1 silo, 2 cores" or "2 silos, 1 core each").ToArray()
            : all;
        var results = new Dictionary<(string, int), (double Median, double Best, string Mode, string Spread)>();
        var interleavedAnchors = new Dictionary<int, (double Median, double Best)>();
        if (paired) await MeasurePairedAsync(siloDll, setups, tokenCounts, repetitions, results, interleavedAnchors);
        foreach (var setup in paired ? Array.Empty<Setup>() : setups)
        {
            await using var cluster = await ClusterUnderTest.StartAsync(siloDll, setup.Silos, setup.Cpus);
            var callers = Callers(cluster.Silos[0].GrpcAddress, tokenCounts.Max());
            try
            {
                foreach (int tokens in tokenCounts)
                {
                    // With --one-silo the in-process layer takes its turn between the calls too, so all of them see the same load.
                    var anchor = oneSiloOnly ? new InProcessLayer(tokens) : null;
                    var measured = await MeasureAsync(callers, tokens, repetitions, cluster.Silos.Select(silo => silo.WebAddress).ToList(), anchor);
                    results[(setup.Name, tokens)] = measured[0];
                    results[(Shared(setup.Name), tokens)] = measured[1];
                    results[(IntoBuffer(setup.Name), tokens)] = measured[2];
                    if (anchor is not null) interleavedAnchors[tokens] = (measured[3].Item1, measured[3].Item2);
                    Console.Error.WriteLine($"measured {setup.Name}, T={tokens}");
                }
            }
            finally
            {
                foreach (var caller in callers) await caller.Client.DisposeAsync();
            }
        }
        var rows = setups.SelectMany(s => new[] { s.Name, Shared(s.Name), IntoBuffer(s.Name) }).ToList();
        var anchors = tokenCounts.ToDictionary(t => t, t =>
        {
            var layer = new InProcessLayer(t);
            var one = layer.Measure(1, repetitions);
            return (Two: interleavedAnchors.TryGetValue(t, out var two) ? two : layer.Measure(Environment.ProcessorCount, repetitions), One: one);
        });

        Console.WriteLine($"## Scale-out, pinned ({Environment.ProcessorCount} cores: {CpuModel()}), median of {repetitions} (best)\n");
        Console.WriteLine("| T | setup | heads per silo | W_O | ms | ÷ 1 silo 2 cores | ÷ 1 silo 1 core | ÷ in-process |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (int t in tokenCounts)
        {
            var two = results[("1 silo, 2 cores", t)].Median;
            double? one = results.TryGetValue(("1 silo, 1 core", t), out var oneCore) ? oneCore.Median : null;
            var anchor = anchors[t].Two.Median;
            foreach (var row in rows)
            {
                var r = results[(row, t)];
                string perOne = one is { } o ? (r.Median / o).ToString("F2", invariant) : "–";
                Console.WriteLine(string.Create(invariant,
                    $"| {t} | {row} | {r.Spread} | {r.Mode} | {r.Median:F1} ({r.Best:F1}) | {r.Median / two:F2} | {perOne} | {r.Median / anchor:F2} |"));
            }
            Console.WriteLine(string.Create(invariant,
                $"| {t} | in-process layer, {Environment.ProcessorCount} threads (1 thread) | – | – | {anchors[t].Two.Median:F1} ({anchors[t].Two.Best:F1}) [{anchors[t].One.Median:F1}] | | | 1.00 |"));
        }
        Console.WriteLine();
        foreach (int t in tokenCounts)
            Console.WriteLine(string.Create(invariant,
                $"T = {t}: 1 silo via gRPC ÷ in-process = {results[("1 silo, 2 cores", t)].Median / anchors[t].Two.Median:F2}; " +
                $"through shared memory ÷ in-process = {results[(Shared("1 silo, 2 cores"), t)].Median / anchors[t].Two.Median:F2}; " +
                $"inline with Y into a reused buffer ÷ in-process = {results[(IntoBuffer("1 silo, 2 cores"), t)].Median / anchors[t].Two.Median:F2}"));
        if (oneSiloOnly) return;
        if (twoSilosOnly)
        {
            foreach (int t in tokenCounts)
                foreach (var via in new Func<string, string>[] { name => name, Shared })
                    Console.WriteLine(string.Create(invariant,
                        $"T = {t}{(via("") == "" ? ", inline" : ", shared memory")}: 2 silos (1 core each) ÷ 1 silo (2 cores) = " +
                        $"{results[(via("2 silos, 1 core each"), t)].Median / results[(via("1 silo, 2 cores"), t)].Median:F2}"));
            return;
        }
        foreach (int t in tokenCounts)
            foreach (var via in new Func<string, string>[] { name => name, Shared })
                Console.WriteLine(string.Create(invariant,
                    $"T = {t}{(via("") == "" ? ", inline" : ", shared memory")}: this machine's two-thread speed-up in-process {anchors[t].One.Median / anchors[t].Two.Median:F2}×; " +
                    $"2 silos (1 core each) ÷ 1 silo (2 cores) = {results[(via("2 silos, 1 core each"), t)].Median / results[(via("1 silo, 2 cores"), t)].Median:F2}; " +
                    $"2 silos ÷ 1 silo on 1 core = {results[(via("2 silos, 1 core each"), t)].Median / results[(via("1 silo, 1 core"), t)].Median:F2}; " +
                    $"3 silos ÷ 1 silo = {results[(via("3 silos, unpinned"), t)].Median / results[(via("1 silo, 2 cores"), t)].Median:F2}; " +
                    $"1 silo ÷ in-process = {results[(via("1 silo, 2 cores"), t)].Median / anchors[t].Two.Median:F2}"));
    }

    // Every setup's cluster started before any call; each setup's inline and shared-memory clients take their turns with
    // all the others'.
    private static async Task MeasurePairedAsync(string siloDll, Setup[] setups, int[] tokenCounts, int repetitions,
        Dictionary<(string, int), (double Median, double Best, string Mode, string Spread)> results,
        Dictionary<int, (double Median, double Best)> anchors)
    {
        var clusters = new List<ClusterUnderTest>();
        var callers = new List<Caller>();
        try
        {
            foreach (var setup in setups)
            {
                var cluster = await ClusterUnderTest.StartAsync(siloDll, setup.Silos, setup.Cpus);
                clusters.Add(cluster);
                callers.AddRange(Callers(cluster.Silos[0].GrpcAddress, tokenCounts.Max()));
            }
            var silos = clusters.SelectMany(c => c.Silos).Select(silo => silo.WebAddress).ToList();
            // A setup's callers answer bit for bit alike; two setups need not (their partial sums add in another order).
            int perSetup = callers.Count / setups.Length;
            var sameAnswer = Enumerable.Range(0, callers.Count).Select(c => c / perSetup).ToArray();
            foreach (int tokens in tokenCounts)
            {
                // The in-process layer takes its turn after every round of calls, as with --one-silo, so the ÷ in-process
                // column compares passes made moments apart (measured after them, it met a quieter machine).
                var rows = await MeasureAsync([.. callers], tokens, repetitions, silos, new InProcessLayer(tokens), groups: sameAnswer);
                anchors[tokens] = (rows[^1].Item1, rows[^1].Item2);
                for (int i = 0; i < setups.Length; i++)
                {
                    results[(setups[i].Name, tokens)] = rows[perSetup * i];
                    results[(Shared(setups[i].Name), tokens)] = rows[perSetup * i + 1];
                    results[(IntoBuffer(setups[i].Name), tokens)] = rows[perSetup * i + 2];
                }
                Console.Error.WriteLine($"measured {setups.Length} setups paired, T={tokens}");
            }
        }
        finally
        {
            foreach (var caller in callers) await caller.Client.DisposeAsync();
            foreach (var cluster in clusters) await cluster.DisposeAsync();
        }
    }

    /// <summary>The same forward pass through each client in turn, call by call, so load drifts hit them alike; with
    /// <paramref name="anchor"/>, its in-process pass (all cores) takes a turn after them and comes last in the result.</summary>
    /// <param name="groups">Per client, which clients must answer bit for bit as it does (those of one group); null: all.</param>
    private static async Task<(double, double, string, string)[]> MeasureAsync(Caller[] clients, int tokens, int repetitions,
        IReadOnlyList<Uri> silos, InProcessLayer? anchor = null, int[]? groups = null)
    {
        var random = new Random(tokens);
        var input = new float[tokens * 768];
        for (int i = 0; i < input.Length; i++) input[i] = (float)(random.NextDouble() * 2 - 1);
        var request = new AttentionInput { Input = new FloatTensor(input, 1, tokens, 768) };
        var last = new AttentionOutput[clients.Length];
        foreach (var (client, c) in clients.Select((client, c) => (client, c)))
            await Warmup.RunAsync(async () => last[c] = await client.ForwardAsync(request), Warmup.Default, silos);
        for (int i = 0; anchor is not null && i < 5; i++) anchor.PassMs(Environment.ProcessorCount);
        var times = clients.Select(_ => new List<double>()).ToArray();
        var anchorTimes = new List<double>();
        for (int i = 0; i < repetitions; i++)
        {
            for (int c = 0; c < clients.Length; c++)
            {
                long started = Stopwatch.GetTimestamp();
                last[c] = await clients[c].ForwardAsync(request);
                times[c].Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            if (anchor is not null) anchorTimes.Add(anchor.PassMs(Environment.ProcessorCount));
        }
        for (int c = 1; c < clients.Length; c++)
        {
            int first = groups is null ? 0 : Array.IndexOf(groups, groups[c]);
            if (!last[c].Output.Data.Span.SequenceEqual(last[first].Output.Data.Span))
                throw new InvalidOperationException($"client {c} answered differently from client {first} at T={tokens}.");
        }
        var rows = times.Select((list, c) =>
        {
            list.Sort();
            string spread = string.Join("/", last[c].Heads.GroupBy(h => h.Silo).Select(g => g.Count()).OrderDescending());
            string mode = last[c].OutputProjection == Contracts.OutputProjectionMode.PartialSums ? "partial sums" : "gathered";
            return (list[list.Count / 2], list[0], mode, spread);
        }).ToList();
        if (anchor is not null)
        {
            anchorTimes.Sort();
            rows.Add((anchorTimes[anchorTimes.Count / 2], anchorTimes[0], "", ""));
        }
        return rows.ToArray();
    }

    private static string CpuModel()
    {
        var line = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) : null;
        string flags = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) ?? "" : "";
        string width = flags.Contains(" avx512f", StringComparison.Ordinal) ? "AVX-512" : flags.Contains(" avx2", StringComparison.Ordinal) ? "AVX2" : "no AVX2";
        return $"{line?.Split(':', 2)[1].Trim() ?? "unknown"}, {width}";
    }
}
