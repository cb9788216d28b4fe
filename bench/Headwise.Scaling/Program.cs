using System.CommandLine;
using System.Globalization;
using Headwise.Client;
using Headwise.Scaling;

// Measures what spreading heads over silos costs on this machine and projects it onto real networks.
// Usage: dotnet build src/Silo -c Release && dotnet run -c Release --project bench/Headwise.Scaling -- [--repetitions 5]
//        ... --project bench/Headwise.Scaling -- pinned [--tokens 128 1024] [--repetitions 15] [--one-silo]   (the scale-out table, silos pinned to cores)
//        ... --project bench/Headwise.Scaling -- allocations [--tokens 128 1024] [--passes 200]   (a silo's allocations and gen-2 collections per pass)
//        ... --project bench/Headwise.Scaling -- client-cost [--tokens 128 1024] [--passes 200] [--rounds 2]   (a same-machine client's CPU and GC per pass)
//        ... --project bench/Headwise.Scaling -- http2-floor [--bytes 3145728] [--repetitions 41] [--rounds 2]   (HTTP/2 against TCP, no Headwise code)
var siloDll = new Option<string>("--silo-dll") { DefaultValueFactory = _ => "src/Silo/bin/Release/net10.0/Headwise.Silo.dll" };
var repetitions = new Option<int>("--repetitions") { DefaultValueFactory = _ => 5 };
var tokenCounts = new Option<int[]>("--tokens") { DefaultValueFactory = _ => [128, 512, 1024, 2048], AllowMultipleArgumentsPerToken = true };
var root = new RootCommand("Headwise scaling measurements (docs/scaling.md)") { siloDll, repetitions, tokenCounts };
root.SetAction(async (parse, cancellation) =>
{
    string dll = Path.GetFullPath(parse.GetRequiredValue(siloDll));
    int reps = parse.GetValue(repetitions);
    int[] tokens = parse.GetRequiredValue(tokenCounts);
    var samples = new List<ForwardSample>();

    foreach (int silos in new[] { 1, 2, 3 })
    {
        await using var cluster = await ClusterUnderTest.StartAsync(dll, silos);
        await using var client = new GrpcAttentionClient(cluster.Silos[0].GrpcAddress);
        foreach (int t in tokens)
        {
            samples.Add(await ForwardSampler.MeasureAsync(client, silos, "per-silo f32", t, reps, bf16: false));
            if (silos > 1) samples.Add(await ForwardSampler.MeasureAsync(client, silos, "per-silo bf16", t, reps, bf16: true));
            Console.Error.WriteLine($"measured {silos} silo(s), T={t}");
        }
    }

    var invariant = CultureInfo.InvariantCulture;
    Console.WriteLine("## Latency of one forward pass (GPT-2-small shape, 12 heads, not causal), median ms, and ratio to 1 silo\n");
    Console.WriteLine("| T | 1 silo | 2 silos | 3 silos | 2 silos bf16 | 3 silos bf16 |");
    Console.WriteLine("|---|---|---|---|---|---|");
    foreach (int t in tokens)
    {
        double one = Find(1, "per-silo f32", t)!.MedianMs;
        string Cell(int silos, string mode) => Find(silos, mode, t) is { } s
            ? string.Create(invariant, $"{s.MedianMs:F1} ({s.MedianMs / one:F2}×)") : "–";
        Console.WriteLine(string.Create(invariant,
            $"| {t} | {one:F1} | {Cell(2, "per-silo f32")} | {Cell(3, "per-silo f32")} | {Cell(2, "per-silo bf16")} | {Cell(3, "per-silo bf16")} |"));
    }

    Console.WriteLine("\n## Bytes on the wire per forward pass, 3 silos (X sent, partial sums or Z received by the coordinator)\n");
    Console.WriteLine("| T | f32 sent / received | bf16 sent / received |");
    Console.WriteLine("|---|---|---|");
    foreach (int t in tokens)
    {
        string Bytes(string mode) => Find(3, mode, t) is { } s ? $"{s.BytesSent:N0} / {s.BytesReceived:N0}" : "–";
        Console.WriteLine($"| {t} | {Bytes("per-silo f32")} | {Bytes("per-silo bf16")} |");
    }

    // Per-message and per-byte cost of one silo-to-silo message, measured without compute (2 silos, echo).
    List<(double Bytes, double Ms)> points;
    await using (var pair = await ClusterUnderTest.StartAsync(dll, 2))
        points = await TransferCost.MeasureAsync(pair.Silos[0], pair.Silos[1], 21);
    var (perMessageMs, perByteMs) = ScalingModel.Fit(points);
    Console.WriteLine("\n## One silo-to-silo hop on loopback, by payload (median of 21, remote minus local echo)\n");
    Console.WriteLine("| payload bytes | extra ms |");
    Console.WriteLine("|---|---|");
    foreach (var (bytes, ms) in points) Console.WriteLine(string.Create(invariant, $"| {bytes:N0} | {ms:F3} |"));
    var anchor = Find(1, "per-silo f32", tokens.Contains(1024) ? 1024 : tokens[^1])!;
    double headFlops = 12 * (2.0 * anchor.Tokens * 768 * 3 * 64 + 4.0 * anchor.Tokens * anchor.Tokens * 64);
    double gflops = headFlops / (anchor.ScatterMs * 1e6);
    Console.WriteLine(string.Create(invariant, $"\n## Fitted costs\n\nper message {perMessageMs:F3} ms, per byte {perByteMs * 1e6:F3} ms/MB (loopback, so this is serialisation and copies, not a wire), " +
        $"one silo computes heads at {gflops:F1} GFLOP/s (12 heads, T={anchor.Tokens}).\n"));

    var model = new ScalingModel(Math.Max(perMessageMs, 0), Math.Max(perByteMs, 0), gflops);
    var frames = await ChannelCost.MeasureAsync(21, sharedMemory: false);
    var (perFrameMs, perFrameByteMs) = ScalingModel.Fit(frames);
    Console.WriteLine(string.Create(invariant, $"tensor channel (loopback): per frame {perFrameMs:F3} ms, per byte {perFrameByteMs * 1e6:F3} ms/MB\n"));
    ScalingProjection.Print(model, model with { MessageMs = Math.Max(perFrameMs, 0) + Math.Max(perMessageMs, 0), MsPerByte = Math.Max(perFrameByteMs, 0) });
    return 0;

    ForwardSample? Find(int silos, string mode, int t) => samples.FirstOrDefault(s => s.Silos == silos && s.Mode == mode && s.Tokens == t);
});
var oneSilo = new Option<bool>("--one-silo") { Description = "only one silo on two cores (inline and shared memory) and the in-process anchor" };
var twoSilos = new Option<bool>("--two-silos") { Description = "only one silo on two cores and two silos on a core each (silo settings come from the environment)" };
var paired = new Option<bool>("--paired") { Description = "start every setup's cluster at once and interleave their calls, call by call" };
var pinned = new Command("pinned", "One silo on one core, one silo on two (inline and shared memory), two silos on a core each, three silos: median ms and ratios")
{
    siloDll, repetitions, tokenCounts, oneSilo, twoSilos, paired,
};
pinned.SetAction(async (parse, cancellation) =>
{
    string dll = Path.GetFullPath(parse.GetRequiredValue(siloDll));
    int[] tokens = parse.GetRequiredValue(tokenCounts);
    await PinnedTable.RunAsync(dll, tokens, Math.Max(5, parse.GetValue(repetitions)), parse.GetValue(oneSilo), parse.GetValue(twoSilos),
        parse.GetValue(paired));
    return 0;
});
root.Subcommands.Add(pinned);

var allocationPasses = new Option<int>("--passes") { DefaultValueFactory = _ => 200, Description = "passes per row" };
var allocations = new Command("allocations", "Managed bytes a silo allocates per forward pass and its gen-2 collections, from its /metrics")
{
    siloDll, tokenCounts, allocationPasses,
};
allocations.SetAction(async (parse, cancellation) =>
{
    await PassAllocations.RunAsync(Path.GetFullPath(parse.GetRequiredValue(siloDll)), parse.GetRequiredValue(tokenCounts), Math.Max(10, parse.GetValue(allocationPasses)));
    return 0;
});
root.Subcommands.Add(allocations);

var rounds = new Option<int>("--rounds") { DefaultValueFactory = _ => 2, Description = "times every row is measured, in turn" };
var clientCost = new Command("client-cost", "A forward pass's CPU, allocations and gen-2 collections in a client on the silo's machine, by client")
{
    siloDll, tokenCounts, allocationPasses, rounds,
};
clientCost.SetAction(async (parse, cancellation) =>
{
    await ClientCost.RunAsync(Path.GetFullPath(parse.GetRequiredValue(siloDll)), parse.GetRequiredValue(tokenCounts),
        Math.Max(10, parse.GetValue(allocationPasses)), Math.Max(1, parse.GetValue(rounds)));
    return 0;
});
root.Subcommands.Add(clientCost);

var floorBytes = new Option<int>("--bytes") { DefaultValueFactory = _ => 1024 * 768 * sizeof(float), Description = "bytes each way (default: X of T = 1024, GPT-2 small)" };
var http2Floor = new Command("http2-floor", "The same bytes echoed through Kestrel's HTTP/2 (the gateway's settings) and through a TCP socket, no Headwise code between")
{
    floorBytes, repetitions, rounds,
};
http2Floor.SetAction(async (parse, cancellation) =>
{
    await Http2Floor.RunAsync(parse.GetValue(floorBytes), Math.Max(5, parse.GetValue(repetitions)), Math.Max(1, parse.GetValue(rounds)));
    return 0;
});
root.Subcommands.Add(http2Floor);

// http2-floor's echo server, in a process of its own as a silo is.
var httpPort = new Option<int>("--http-port") { Required = true };
var tcpPort = new Option<int>("--tcp-port") { Required = true };
var http2Echo = new Command("http2-echo", "(internal) the echo server http2-floor starts") { floorBytes, httpPort, tcpPort };
http2Echo.Hidden = true;
http2Echo.SetAction(async (parse, cancellation) =>
{
    await Http2Floor.ServeAsync(parse.GetValue(httpPort), parse.GetValue(tcpPort), parse.GetValue(floorBytes));
    return 0;
});
root.Subcommands.Add(http2Echo);

var grpcAddress = new Option<string>("--grpc") { DefaultValueFactory = _ => "http://127.0.0.1:5070" };
var webAddress = new Option<string>("--web") { DefaultValueFactory = _ => "http://127.0.0.1:5080" };
var tokensOne = new Option<int>("--tokens") { DefaultValueFactory = _ => 1024 };
var plainClient = new Option<bool>("--plain") { Description = "time the proto's own client (no retry policy) instead of the SDK" };
var sharedMemoryClient = new Option<bool>("--shared-memory") { Description = "time the SDK with X and Y through shared memory (a silo on this machine)" };
var breakdown = new Command("breakdown", "Where a forward pass's time goes in a running silo, from its own spans")
{
    grpcAddress, webAddress, tokensOne, repetitions, plainClient, sharedMemoryClient,
};
breakdown.SetAction(async (parse, cancellation) =>
{
    await TraceBreakdown.RunAsync(new Uri(parse.GetRequiredValue(grpcAddress)), new Uri(parse.GetRequiredValue(webAddress)),
        parse.GetValue(tokensOne), Math.Max(5, parse.GetValue(repetitions)), parse.GetValue(plainClient), parse.GetValue(sharedMemoryClient));
    return 0;
});
root.Subcommands.Add(breakdown);

var messageMs = new Option<double>("--message-ms") { DefaultValueFactory = _ => 0.55 };
var msPerMegabyte = new Option<double>("--ms-per-mb") { DefaultValueFactory = _ => 0.6 };
var gflopsOption = new Option<double>("--gflops") { DefaultValueFactory = _ => 300 };
var channelMsPerMegabyte = new Option<double>("--channel-ms-per-mb") { DefaultValueFactory = _ => 0.4 };
var pieceRowsOption = new Option<int>("--piece-rows")
{
    DefaultValueFactory = _ => 0, Description = "Headwise__PieceRows (0: chosen per pass, as the coordinator does: 192, 96 through relays)",
};
var piecesOverheadOption = new Option<double>("--pieces-overhead")
{
    DefaultValueFactory = _ => 1.08, Description = "pieces ms ÷ fused ms at 192-row pieces (Headwise.Bench pieces)",
};
var relayedPiecesOverheadOption = new Option<double>("--relayed-pieces-overhead")
{
    DefaultValueFactory = _ => 1.12, Description = "pieces ms ÷ fused ms at 96-row pieces (Headwise.Bench pieces)",
};
var fanoutOption = new Option<int>("--fanout") { DefaultValueFactory = _ => 0, Description = "Headwise__TreeFanout (0: chosen per pass, as the silos do)" };
var project = new Command("project", "The projection table alone, from given costs (the default command measures them)")
{
    messageMs, msPerMegabyte, channelMsPerMegabyte, gflopsOption, pieceRowsOption, piecesOverheadOption, relayedPiecesOverheadOption, fanoutOption,
};
project.SetAction(parse =>
{
    var orleans = new ScalingModel(parse.GetValue(messageMs), parse.GetValue(msPerMegabyte) / 1e6, parse.GetValue(gflopsOption));
    ScalingProjection.Print(orleans, orleans with { MsPerByte = parse.GetValue(channelMsPerMegabyte) / 1e6 },
        parse.GetValue(pieceRowsOption), parse.GetValue(piecesOverheadOption), parse.GetValue(relayedPiecesOverheadOption), parse.GetValue(fanoutOption));
    return 0;
});
root.Subcommands.Add(project);

var hop = new Command("hop", "The cost of one silo-to-silo message by payload size (two silo processes, no compute)") { siloDll, repetitions };
hop.SetAction(async (parse, cancellation) =>
{
    await using var pair = await ClusterUnderTest.StartAsync(Path.GetFullPath(parse.GetRequiredValue(siloDll)), 2);
    var points = await TransferCost.MeasureAsync(pair.Silos[0], pair.Silos[1], Math.Max(5, parse.GetValue(repetitions)));
    var (perMessage, perByte) = ScalingModel.Fit(points);
    Console.WriteLine("| payload bytes | extra ms | MB/s |");
    Console.WriteLine("|---|---|---|");
    foreach (var (bytes, ms) in points)
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {bytes:N0} | {ms:F3} | {bytes / 1e6 / (ms / 1e3):F0} |"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"\nOrleans message: per message {perMessage:F3} ms, per byte {perByte * 1e6:F3} ms/MB\n"));
    // TCP is what a hop between hosts pays (the model's input); shared memory what silos of one host pay.
    var frames = await ChannelCost.MeasureAsync(Math.Max(5, parse.GetValue(repetitions)), sharedMemory: false);
    var shared = await ChannelCost.MeasureAsync(Math.Max(5, parse.GetValue(repetitions)), sharedMemory: true);
    var (perFrame, perFrameByte) = ScalingModel.Fit(frames);
    var (perSharedFrame, perSharedByte) = ScalingModel.Fit(shared);
    Console.WriteLine("| payload bytes | tensor channel, TCP ms | MB/s | tensor channel, shared memory ms | MB/s |");
    Console.WriteLine("|---|---|---|---|---|");
    for (int i = 0; i < frames.Count; i++)
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {frames[i].Bytes:N0} | {frames[i].Ms:F3} | {frames[i].Bytes / 1e6 / (frames[i].Ms / 1e3):F0} | {shared[i].Ms:F3} | {shared[i].Bytes / 1e6 / (shared[i].Ms / 1e3):F0} |"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"\ntensor channel, TCP: per frame {perFrame:F3} ms, per byte {perFrameByte * 1e6:F3} ms/MB"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tensor channel, shared memory: per frame {perSharedFrame:F3} ms, per byte {perSharedByte * 1e6:F3} ms/MB"));
    return 0;
});
root.Subcommands.Add(hop);
return await root.Parse(args).InvokeAsync();
