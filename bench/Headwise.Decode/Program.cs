using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Headwise.Client;
using Headwise.Contracts;
using Headwise.Decode;
using Headwise.TestSupport;

// Per-token decode latency of the demo model (GPT-2-small shape: D 768, 12 heads of 64) through gRPC, for a range
// of contexts. For each context c it opens `--sessions` sessions, prefills c − 1 tokens in one step (not timed),
// then times `--steps` single-token Decode calls (contexts c … c + steps − 1) end to end at the client.
// Starts `--silos` silo processes on loopback (the first one loads the demo model), or uses `--server`.

var siloDll = new Option<string>("--silo-dll") { DefaultValueFactory = _ => "src/Silo/bin/Release/net10.0/Headwise.Silo.dll" };
var server = new Option<string?>("--server") { Description = "use this running gateway instead of starting silos" };
var silos = new Option<int>("--silos") { DefaultValueFactory = _ => 1 };
var contexts = new Option<string>("--contexts") { DefaultValueFactory = _ => "1,16,64,128,256,512,1024,2048" };
var sessions = new Option<int>("--sessions") { DefaultValueFactory = _ => 4 };
var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 32 };
var root = new RootCommand("Headwise per-token decode latency (docs/performance.md, Decode)") { siloDll, server, silos, contexts, sessions, steps };

var throughputSilos = new Option<string>("--silos") { DefaultValueFactory = _ => "1,3", Description = "silo counts, one cluster each" };
var throughputContexts = new Option<string>("--contexts") { DefaultValueFactory = _ => "128,1024" };
var concurrency = new Option<string>("--sessions") { DefaultValueFactory = _ => "1,8,64,256", Description = "sessions decoding at once" };
var batching = new Option<string>("--batching") { DefaultValueFactory = _ => "off,on", Description = "Headwise__DecodeBatching per cluster" };
var transports = new Option<string>("--transports") { DefaultValueFactory = _ => "unary,stream", Description = "unary Decode calls, or one DecodeStream per session" };
var timedSteps = new Option<int>("--steps") { DefaultValueFactory = _ => 16, Description = "timed steps per session per cell" };
var throughput = new Command("throughput", "tokens/s and step latency of N concurrent sessions, batching off and on (docs/performance.md, Decode throughput)")
    { siloDll, throughputSilos, throughputContexts, concurrency, batching, transports, timedSteps };
throughput.SetAction((parse, cancellationToken) =>
{
    static int[] Ints(string list) => list.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
    var plan = new ThroughputPlan(
        Path.GetFullPath(parse.GetRequiredValue(siloDll)),
        Ints(parse.GetRequiredValue(throughputSilos)),
        Ints(parse.GetRequiredValue(throughputContexts)),
        Ints(parse.GetRequiredValue(concurrency)),
        parse.GetRequiredValue(batching).Split(',').Select(mode => mode.Trim() switch
        {
            "on" => true,
            "off" => false,
            _ => throw new ArgumentException($"--batching takes on and off, not '{mode}'."),
        }).ToArray(),
        parse.GetRequiredValue(transports).Split(',').Select(transport => transport.Trim() is "unary" or "stream"
            ? transport.Trim()
            : throw new ArgumentException($"--transports takes unary and stream, not '{transport}'.")).ToArray(),
        parse.GetValue(timedSteps));
    return ThroughputRunner.Run(plan, cancellationToken);
});
root.Subcommands.Add(throughput);

var splitContext = new Option<int>("--context") { DefaultValueFactory = _ => 1024, Description = "tokens in the cache before the first timed step" };
var splitSteps = new Option<int>("--steps") { DefaultValueFactory = _ => 400, Description = "timed steps; the last 150 are traced" };
var splitTransport = new Option<string>("--transport") { DefaultValueFactory = _ => "stream", Description = "unary or stream" };
var split = new Command("split", "where one session's step goes, from the silo's headwise.decode spans (docs/performance.md)")
    { siloDll, splitContext, splitSteps, splitTransport };
split.SetAction((parse, cancellationToken) =>
{
    string transport = parse.GetRequiredValue(splitTransport);
    if (transport is not ("unary" or "stream")) throw new ArgumentException($"--transport takes unary or stream, not '{transport}'.");
    return StepSplit.RunAsync(Path.GetFullPath(parse.GetRequiredValue(siloDll)), parse.GetValue(splitContext), parse.GetValue(splitSteps), transport, cancellationToken);
});
root.Subcommands.Add(split);
var forwardTokens = new Option<string>("--tokens") { DefaultValueFactory = _ => "16,128", Description = "tokens per forward" };
var forwardCallers = new Option<string>("--callers") { DefaultValueFactory = _ => "1,8,32", Description = "callers sending forwards at once" };
var forwardPasses = new Option<int>("--passes") { DefaultValueFactory = _ => 40, Description = "forwards per caller per cell" };
var forwards = new Command("forwards", "tokens/s and latency of N concurrent forward callers, forward batching off and on (docs/performance.md)")
    { siloDll, forwardTokens, forwardCallers, forwardPasses };
forwards.SetAction((parse, cancellationToken) =>
{
    static int[] Ints(string list) => list.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
    return ForwardThroughput.RunAsync(Path.GetFullPath(parse.GetRequiredValue(siloDll)), Ints(parse.GetRequiredValue(forwardTokens)),
        Ints(parse.GetRequiredValue(forwardCallers)), parse.GetValue(forwardPasses), cancellationToken);
});
root.Subcommands.Add(forwards);
var lifecycleContexts = new Option<string>("--contexts") { DefaultValueFactory = _ => "128,1024,2048", Description = "prompt tokens per session" };
var lifecycleRepetitions = new Option<int>("--repetitions") { DefaultValueFactory = _ => 21, Description = "sessions per context" };
var lifecycle = new Command("lifecycle", "a session's open, prefill (beside a causal Forward of the same X) and close (docs/performance.md)")
    { siloDll, lifecycleContexts, lifecycleRepetitions };
lifecycle.SetAction((parse, cancellationToken) =>
    SessionLifecycle.RunAsync(Path.GetFullPath(parse.GetRequiredValue(siloDll)),
        parse.GetRequiredValue(lifecycleContexts).Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(),
        parse.GetValue(lifecycleRepetitions), cancellationToken));
root.Subcommands.Add(lifecycle);
var allocationSteps = new Option<int>("--steps") { DefaultValueFactory = _ => 1000, Description = "streamed steps per round" };
var allocationRounds = new Option<int>("--rounds") { DefaultValueFactory = _ => 3, Description = "sessions measured, after one warm-up" };
var allocations = new Command("allocations", "managed bytes a silo allocates per streamed decode step, from its /metrics (docs/performance.md)")
    { siloDll, allocationSteps, allocationRounds };
allocations.SetAction((parse, cancellationToken) =>
    StepAllocations.RunAsync(Path.GetFullPath(parse.GetRequiredValue(siloDll)), parse.GetValue(allocationSteps),
        parse.GetValue(allocationRounds), cancellationToken));
root.Subcommands.Add(allocations);
root.SetAction(async (parse, cancellationToken) =>
{
    var targets = parse.GetRequiredValue(contexts).Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
    int sessionCount = parse.GetValue(sessions), stepCount = parse.GetValue(steps), siloCount = parse.GetValue(silos);

    var processes = new List<SiloProcess>();
    Uri address;
    if (parse.GetValue(server) is { } given)
    {
        address = new Uri(given);
    }
    else
    {
        string dll = Path.GetFullPath(parse.GetRequiredValue(siloDll));
        var common = new Dictionary<string, string>
        {
            ["Headwise__RebalanceIdleSeconds"] = "0",
            ["Headwise__Speed"] = "100",
            ["Logging__LogLevel__Default"] = "Warning",
        };
        var first = SiloProcess.Start(dll, common);
        await first.WaitUntilHealthyAsync();
        processes.Add(first);
        for (int i = 1; i < siloCount; i++)
            processes.Add(SiloProcess.Start(dll, new Dictionary<string, string>(common)
            {
                ["Headwise__DemoModel"] = "false",
                ["Headwise__PrimarySiloPort"] = first.SiloPort.ToString(CultureInfo.InvariantCulture),
            }));
        await Task.WhenAll(processes.Skip(1).Select(p => p.WaitUntilHealthyAsync()));
        address = first.GrpcAddress;
    }

    try
    {
        await using var client = new GrpcAttentionClient(address);
        if (siloCount > 1)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                await client.RebalanceAsync("demo", cancellationToken);
                var heads = (await client.GetModelAsync("demo", cancellationToken)).Heads;
                if (heads.Select(h => h.Silo).Distinct().Count() == siloCount || DateTime.UtcNow > deadline) break;
                await Task.Delay(500, cancellationToken);
            }
        }
        var model = await client.GetModelAsync("demo", cancellationToken);
        int modelDim = model.Spec.ModelDim;
        var random = new Random(7);
        FloatTensor Tokens(int count) =>
            new(Enumerable.Range(0, count * modelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), 1, count, modelDim);

        async Task<double[]> Measure(int context)
        {
            var samples = new List<double>();
            for (int s = 0; s < sessionCount; s++)
            {
                var session = await client.OpenSessionAsync("demo", 0, context + stepCount, cancellationToken);
                if (context > 1) await client.DecodeAsync(session.Id, Tokens(context - 1), cancellationToken);
                for (int step = 0; step < stepCount; step++)
                {
                    var x = Tokens(1);
                    long started = Stopwatch.GetTimestamp();
                    await client.DecodeAsync(session.Id, x, cancellationToken);
                    samples.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                }
                await client.CloseSessionAsync(session.Id, cancellationToken);
            }
            return samples.Order().ToArray();
        }

        await Measure(64); // warm-up: JIT, connections, activations
        // The floor under every step: one gRPC round trip and one grain call that does no arithmetic.
        var floor = new List<double>();
        for (int i = 0; i < 20 + 128; i++)
        {
            long started = Stopwatch.GetTimestamp();
            await client.ListModelsAsync(cancellationToken);
            if (i >= 20) floor.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        var floorSorted = floor.Order().ToArray();
        var bare = new List<double>();
        for (int i = 0; i < 20 + 128; i++)
        {
            long started = Stopwatch.GetTimestamp();
            try { await client.DecodeAsync("not a session id!", Tokens(1), cancellationToken); } catch (HeadwiseException) { }
            if (i >= 20) bare.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        var bareSorted = bare.Order().ToArray();
        if (processes.Count > 0)
        {
            // Below gRPC: an HTTP/2 GET on the same port that Kestrel answers 404 at once (no gRPC, no grain call).
            using var http = new HttpClient();
            var h2 = new List<double>();
            for (int i = 0; i < 20 + 128; i++)
            {
                using var get = new HttpRequestMessage(HttpMethod.Get, new Uri(processes[0].GrpcAddress, "/nothing-here"))
                    { Version = System.Net.HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
                long started = Stopwatch.GetTimestamp();
                using var answer = await http.SendAsync(get, cancellationToken);
                if (i >= 20) h2.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            var h2Sorted = h2.Order().ToArray();
            Console.WriteLine($"http/2 (GET on the gRPC port, 404, no gRPC, no grain call): p50 {Percentile(h2Sorted, 0.5):F3} ms, min {h2Sorted[0]:F3} ms");
        }
        Console.WriteLine($"bare (Decode refused at the gateway, no grain call): p50 {Percentile(bareSorted, 0.5):F3} ms, min {bareSorted[0]:F3} ms");
        Console.WriteLine($"silos {siloCount}; heads on {model.Heads.Select(h => h.Silo).Distinct().Count()} silo(s); {Environment.ProcessorCount} cores; " +
                          $"load average {LoadAverage()}; {sessionCount} sessions x {stepCount} steps per row");
        Console.WriteLine($"floor (ListModels: gRPC round trip + one grain call): p50 {Percentile(floorSorted, 0.5):F3} ms, min {floorSorted[0]:F3} ms");
        Console.WriteLine("| context | p50 ms | p99 ms | min ms | max ms |");
        Console.WriteLine("| ---: | ---: | ---: | ---: | ---: |");
        foreach (int context in targets)
        {
            var sorted = await Measure(context);
            string F(double value) => value.ToString("F3", CultureInfo.InvariantCulture);
            Console.WriteLine($"| {context} … {context + stepCount - 1} | {F(Percentile(sorted, 0.5))} | {F(Percentile(sorted, 0.99))} | {F(sorted[0])} | {F(sorted[^1])} |");
        }
        // Prefill is a Decode of many tokens: its cost against one causal Forward of the same tokens.
        foreach (int tokens in new[] { 128, 1024 })
        {
            var prefill = new List<double>();
            var forward = new List<double>();
            for (int i = 0; i < 5; i++)
            {
                var x = Tokens(tokens);
                var session = await client.OpenSessionAsync("demo", 0, tokens, cancellationToken);
                long started = Stopwatch.GetTimestamp();
                await client.DecodeAsync(session.Id, x, cancellationToken);
                prefill.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                await client.CloseSessionAsync(session.Id, cancellationToken);
                started = Stopwatch.GetTimestamp();
                await client.ForwardAsync("demo", new AttentionInput { Input = x, Causal = true }, cancellationToken);
                forward.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            Console.WriteLine($"prefill of {tokens} tokens (one Decode): median {prefill.Order().ElementAt(2):F1} ms; causal Forward of the same: median {forward.Order().ElementAt(2):F1} ms");
        }
        Console.WriteLine($"load average after: {LoadAverage()}");
    }
    finally
    {
        foreach (var process in Enumerable.Reverse(processes)) await process.DisposeAsync();
    }
    return 0;
});
return await root.Parse(args).InvokeAsync();

static double Percentile(double[] sorted, double quantile) =>
    sorted[Math.Clamp((int)Math.Ceiling(quantile * sorted.Length) - 1, 0, sorted.Length - 1)];

static string LoadAverage() =>
    File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
