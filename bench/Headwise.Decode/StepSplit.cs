using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Decode;

/// <summary>
/// Where one session's decode step goes, from the silo's own span of each step (the dashboard's /api/traces/{id}): the
/// client's step, the session grain's <c>headwise.decode</c> span, and inside it the heads and W_O
/// (<c>headwise.heads_ms</c>) and the commit to storage (<c>headwise.commit_ms</c>). One silo, the demo model, one
/// session at a time, after the silo's JIT is quiet.
/// </summary>
internal static class StepSplit
{
    private const string Model = "demo";

    // The silo keeps the spans of its last 200 traces (Headwise__Telemetry__RecentTraces): the split reads fewer.
    private const int MostTraced = 150;

    public static async Task<int> RunAsync(string siloDll, int context, int steps, string transport, CancellationToken cancellationToken)
    {
        if (context < 1) throw new ArgumentException("--context must be at least 1: the steps are matched to their spans by position.");
        // A stream's steps share one trace, and the silo keeps only a trace's first MaxSpansPerTrace spans (a step makes
        // a handful): room for every step's, so the last ones are still there to read.
        var settings = new Dictionary<string, string>
        {
            ["Headwise__Telemetry__MaxSpansPerTrace"] = Math.Min(1_000_000, 64 * (steps + 2)).ToString(CultureInfo.InvariantCulture),
        };
        await using var cluster = await BenchCluster.StartAsync(siloDll, 1, settings, cancellationToken);
        await using var client = new GrpcAttentionClient(cluster.GrpcAddress);
        using var http = new HttpClient { BaseAddress = cluster.WebAddresses[0] };
        var random = new Random(context);
        int modelDim = (await client.GetModelAsync(Model, cancellationToken)).Spec.ModelDim;
        FloatTensor Tokens(int count) =>
            new(Enumerable.Range(0, count * modelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), 1, count, modelDim);

        // Warm-up: steps of a session of its own until the silo's JIT is quiet, in a new session whenever one is full (a
        // JIT that stays busy for long would otherwise run a session past its max_tokens).
        const int WarmMaxTokens = 16384;
        var prompt = Tokens(Math.Max(1, context - 1));
        var token = Tokens(1);
        string warm = "";
        int warmPosition = WarmMaxTokens;
        await Warmup.RunAsync(async () =>
        {
            if (warmPosition + 1 > WarmMaxTokens)
            {
                if (warm.Length > 0) await client.CloseSessionAsync(warm, cancellationToken);
                warm = (await client.OpenSessionAsync(Model, 0, WarmMaxTokens, cancellationToken)).Id;
                warmPosition = (await client.DecodeAsync(warm, prompt, cancellationToken)).Position;
            }
            warmPosition = (await client.DecodeAsync(warm, token, cancellationToken)).Position;
        }, Warmup.Default, cluster.WebAddresses, minimumPasses: 200);
        await client.CloseSessionAsync(warm, cancellationToken);

        string id = (await client.OpenSessionAsync(Model, 0, context + steps + 1, cancellationToken)).Id;
        if (context > 1) await client.DecodeAsync(id, Tokens(context - 1), cancellationToken);
        var inputs = Enumerable.Range(0, steps + 1).Select(_ => Tokens(1)).ToArray();
        await using var stream = transport == "stream" ? await client.OpenDecodeStreamAsync(id, cancellationToken) : null;
        Task<DecodeOutput> Step(FloatTensor x) => stream is not null ? stream.StepAsync(x, cancellationToken) : client.DecodeAsync(id, x, cancellationToken);
        await Step(inputs[0]); // the first step after the prefill is not timed, as in `throughput`
        var clientMs = new double[steps];
        var traceIds = new string[steps];
        for (int i = 0; i < steps; i++)
        {
            long before = Stopwatch.GetTimestamp();
            traceIds[i] = (await Step(inputs[i + 1])).TraceId;
            clientMs[i] = Stopwatch.GetElapsedTime(before).TotalMilliseconds;
        }
        await Task.Delay(200, cancellationToken); // the spans' export into the silo's ring is asynchronous

        // A unary step is a trace of its own; a stream's steps share the stream's trace. Either way a step's span is the
        // headwise.decode span whose position is the step's (the prefill and the untimed step come first).
        var rows = new List<double[]>();
        var traces = new Dictionary<string, JsonElement[]>();
        for (int i = Math.Max(0, steps - MostTraced); i < steps; i++)
        {
            if (!traces.TryGetValue(traceIds[i], out var decodeSpans))
                traces[traceIds[i]] = decodeSpans = (await http.GetFromJsonAsync<JsonElement>($"/api/traces/{traceIds[i]}", cancellationToken))
                    .GetProperty("spans").EnumerateArray().Where(s => s.GetProperty("name").GetString() == "headwise.decode").ToArray();
            string position = (context + i).ToString(CultureInfo.InvariantCulture);
            // A failed attempt at the same position has no heads_ms: only the step that counted is read.
            var span = decodeSpans.FirstOrDefault(s => s.GetProperty("tags") is var tags && tags.TryGetProperty("headwise.heads_ms", out _)
                && tags.TryGetProperty("headwise.position", out var at) && at.GetString() == position);
            if (span.ValueKind != JsonValueKind.Object) continue;
            var tags = span.GetProperty("tags");
            double Tag(string name) => double.Parse(tags.GetProperty(name).GetString()!, CultureInfo.InvariantCulture);
            double spanMs = span.GetProperty("durationMs").GetDouble(), heads = Tag("headwise.heads_ms"), commit = Tag("headwise.commit_ms");
            rows.Add([clientMs[i], spanMs, heads, commit, spanMs - heads - commit, clientMs[i] - spanMs]);
        }
        if (rows.Count == 0) throw new InvalidOperationException("no step's headwise.decode span was found in the silo's recent traces.");

        string[] parts =
        [
            "client step", "session grain's span (headwise.decode)", "heads and W_O (headwise.heads_ms)", "commit: stored inputs and record (headwise.commit_ms)",
            "session grain before the heads", "outside the span: client, gateway, grain call",
        ];
        Console.WriteLine($"## One session's step, {transport}, context {context}…{context + steps - 1}: {rows.Count} steps traced of {steps}; load {LatencySamples.LoadAverage()}\n");
        Console.WriteLine("| part | p50 ms | p10 ms | p90 ms |");
        Console.WriteLine("|---|---|---|---|");
        for (int p = 0; p < parts.Length; p++)
        {
            var sorted = rows.Select(r => r[p]).Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {parts[p]} | {sorted[sorted.Length / 2]:F3} | {sorted[sorted.Length / 10]:F3} | {sorted[sorted.Length * 9 / 10]:F3} |"));
        }
        return 0;
    }
}
