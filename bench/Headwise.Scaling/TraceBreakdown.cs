using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Scaling;

/// <summary>
/// Where one forward pass's time goes inside a running cluster, from the silos' own spans (the dashboard's
/// /api/traces/{id}): the client's round trip, the gateway's request span, the wait before the coordinator starts,
/// the heads (first start to last end), the output projection, and what is left, as medians over the passes.
/// </summary>
internal static class TraceBreakdown
{
    /// <param name="raw">Time a plain client generated from the proto (no retry policy, default channel) instead of the SDK.</param>
    /// <param name="sharedMemory">Time the SDK with X and Y through shared memory (<see cref="SharedMemoryMode.On"/>).</param>
    public static async Task RunAsync(Uri grpc, Uri web, int tokens, int repetitions, bool raw = false, bool sharedMemory = false)
    {
        await using var sdk = new GrpcAttentionClient(grpc,
            new GrpcAttentionClientOptions { SharedMemory = sharedMemory ? SharedMemoryMode.On : SharedMemoryMode.Off });
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(grpc, new Grpc.Net.Client.GrpcChannelOptions { MaxReceiveMessageSize = null });
        var plain = new V1.Attention.AttentionClient(channel);
        // Returns the pass's trace id; the plain client is what a caller in any language has: the proto and a channel.
        Func<AttentionInput, Task<string>> pass = raw
            ? async input =>
            {
                var tensor = new V1.Tensor
                {
                    Dtype = V1.DType.F32,
                    Data = Google.Protobuf.ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(input.Input.Data.Span)),
                };
                tensor.Shape.Add(input.Input.Shape.Select(s => (long)s));
                return (await plain.ForwardAsync(new V1.ForwardRequest { Model = "demo", Input = tensor })).TraceId;
            }
            : async input => (await sdk.ForwardAsync("demo", input)).TraceId;
        using var http = new HttpClient { BaseAddress = web };
        var random = new Random(tokens);
        var input = Enumerable.Range(0, tokens * 768).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var request = new AttentionInput { Input = new FloatTensor(input, 1, tokens, 768) };
        await Warmup.RunAsync(() => pass(request), Warmup.Default, [web]);

        var rows = new List<double[]>();
        for (int i = 0; i < repetitions; i++)
        {
            long started = Stopwatch.GetTimestamp();
            string traceId = await pass(request);
            double roundTrip = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            await Task.Delay(50); // the spans' export into the silo's ring is asynchronous
            var trace = await http.GetFromJsonAsync<JsonElement>($"/api/traces/{traceId}");
            var spans = trace.GetProperty("spans").EnumerateArray().Select(s => (
                Name: s.GetProperty("name").GetString()!,
                Silo: s.GetProperty("silo").GetString() ?? "",
                Start: s.GetProperty("startMs").GetDouble(),
                Duration: s.GetProperty("durationMs").GetDouble())).ToList();
            var server = spans.First(s => s.Name.StartsWith("POST ", StringComparison.Ordinal));
            var forward = spans.First(s => s.Name == "headwise.forward");
            var heads = spans.Where(s => s.Name == "headwise.head").ToList();
            var projection = spans.Where(s => s.Name == "headwise.output_projection").ToList();
            double headsStart = heads.Min(h => h.Start), headsEnd = heads.Max(h => h.Start + h.Duration);
            // A silo's compute threads each project their own groups' rows of W_O, at the same time as the other's heads:
            // first start → last end, and the coordinator's own time is what follows both.
            double projectionEnd = projection.Count == 0 ? headsEnd : projection.Max(p => p.Start + p.Duration);
            double projectionMs = projection.Count == 0 ? 0 : projectionEnd - projection.Min(p => p.Start);
            var localHeads = heads.Where(h => h.Silo == forward.Silo).ToList();
            var remoteHeads = heads.Where(h => h.Silo != forward.Silo).ToList();
            // Same machine, same clock: how long after the coordinator's own heads the first remote head started.
            double remoteLag = localHeads.Count > 0 && remoteHeads.Count > 0 ? remoteHeads.Min(h => h.Start) - localHeads.Min(h => h.Start) : 0;
            rows.Add([
                roundTrip,
                server.Duration,
                forward.Start - server.Start,
                headsStart - forward.Start,
                headsEnd - headsStart,
                heads.Sum(h => h.Duration),
                projectionMs,
                forward.Start + forward.Duration - Math.Max(headsEnd, projectionEnd),
                server.Start + server.Duration - (forward.Start + forward.Duration),
                remoteLag,
            ]);
        }
        string[] names =
        [
            "client round trip", "gateway request span", "request start → coordinator", "coordinator → first head",
            "heads, first start → last end", "heads, sum of kernel spans", "output projection, first start → last end", "coordinator after heads and W_O",
            "coordinator end → response end", "first remote head's start − first local head's start",
        ];
        Console.WriteLine($"## Where a forward pass's time goes (T = {tokens}, {(raw ? "plain generated client, no retry" : sharedMemory ? "Headwise SDK, shared memory" : "Headwise SDK")}, median of {repetitions}, ms)\n");
        // The spread too: on a noisy VM one slow phase (X still arriving, say) shows in p90 and worst long before the median.
        Console.WriteLine("| part | median | best | p90 | worst |");
        Console.WriteLine("|---|---|---|---|---|");
        for (int c = 0; c < names.Length; c++)
        {
            var column = rows.Select(r => r[c]).Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {names[c]} | {column[column.Length / 2]:F2} | {column[0]:F2} | {column[column.Length * 9 / 10]:F2} | {column[^1]:F2} |"));
        }
    }
}
