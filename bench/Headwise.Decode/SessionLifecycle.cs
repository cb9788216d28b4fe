using System.Diagnostics;
using System.Globalization;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Decode;

/// <summary>
/// What a session costs a caller around its steps, per context: opening it, its prefill (one Decode of all the prompt's
/// tokens) beside a causal Forward of the same X on the same silo, and closing it after a few generated steps, with
/// every input stored. One silo, the demo model, one session at a time; each repetition opens, prefills, steps (not
/// timed), closes, then runs the Forward.
/// </summary>
internal static class SessionLifecycle
{
    private const string Model = "demo";

    // Generated tokens between the prefill and the close, as a session answering a prompt has.
    private const int Steps = 8;

    public static async Task<int> RunAsync(string siloDll, int[] contexts, int repetitions, CancellationToken cancellationToken)
    {
        await using var cluster = await BenchCluster.StartAsync(siloDll, 1, new Dictionary<string, string>(), cancellationToken);
        await using var client = new GrpcAttentionClient(cluster.GrpcAddress);
        int modelDim = (await client.GetModelAsync(Model, cancellationToken)).Spec.ModelDim;
        var random = new Random(1);
        FloatTensor Tokens(int count) =>
            new(Enumerable.Range(0, count * modelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), 1, count, modelDim);

        var token = Tokens(1);
        async Task<(double Open, double Prefill, double Close, double Forward)> Once(FloatTensor prompt)
        {
            long started = Stopwatch.GetTimestamp();
            string id = (await client.OpenSessionAsync(Model, 0, prompt.Shape[1] + Steps, cancellationToken)).Id;
            double open = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            started = Stopwatch.GetTimestamp();
            await client.DecodeAsync(id, prompt, cancellationToken);
            double prefill = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            for (int step = 0; step < Steps; step++) await client.DecodeAsync(id, token, cancellationToken);
            started = Stopwatch.GetTimestamp();
            await client.CloseSessionAsync(id, cancellationToken);
            double close = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            started = Stopwatch.GetTimestamp();
            await client.ForwardAsync(Model, new AttentionInput { Input = prompt, Causal = true }, cancellationToken);
            return (open, prefill, close, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        var warm = Tokens(contexts.Max());
        await Warmup.RunAsync(() => Once(warm), Warmup.Default, cluster.WebAddresses, minimumPasses: 10);

        Console.WriteLine($"## A session's lifecycle: one silo, demo model, {repetitions} sessions per context; " +
                          $"{Environment.ProcessorCount} cores; load {LatencySamples.LoadAverage()}\n");
        Console.WriteLine("| context | open p50 ms | prefill p50 ms | causal Forward p50 ms | prefill ÷ Forward | close p50 ms |");
        Console.WriteLine("| ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (int context in contexts)
        {
            var prompt = Tokens(context);
            var runs = new List<(double Open, double Prefill, double Close, double Forward)>();
            for (int i = 0; i < repetitions; i++) runs.Add(await Once(prompt));
            var open = new LatencySamples(runs.Select(r => r.Open));
            var prefill = new LatencySamples(runs.Select(r => r.Prefill));
            var forward = new LatencySamples(runs.Select(r => r.Forward));
            var close = new LatencySamples(runs.Select(r => r.Close));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {context} | {LatencySamples.Ms(open.P50)} | {LatencySamples.Ms(prefill.P50)} | {LatencySamples.Ms(forward.P50)} | " +
                $"{prefill.P50 / forward.P50:F2} | {LatencySamples.Ms(close.P50)} |"));
        }
        Console.WriteLine($"\nload average after: {LatencySamples.LoadAverage()}");
        return 0;
    }
}
