using System.Globalization;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Decode;

/// <summary>
/// What one streamed decode step costs a silo's garbage collector, from the silo's own /metrics: managed bytes allocated
/// per step and gen-2 collections per 1,000 steps. One silo, the demo model; each round opens a session, prefills 128
/// tokens, streams its steps one token at a time (context 128 up to 128 + steps) and closes it, so the caches' and the
/// input history's growth is counted as a session pays it.
/// </summary>
internal static class StepAllocations
{
    private const string Model = "demo";
    private const int Prompt = 128;

    public static async Task<int> RunAsync(string siloDll, int steps, int rounds, CancellationToken cancellationToken)
    {
        await using var cluster = await BenchCluster.StartAsync(siloDll, 1, new Dictionary<string, string>(), cancellationToken);
        await using var client = new GrpcAttentionClient(cluster.GrpcAddress);
        using var http = new HttpClient { BaseAddress = cluster.WebAddresses[0] };
        int modelDim = (await client.GetModelAsync(Model, cancellationToken)).Spec.ModelDim;
        var random = new Random(1);
        FloatTensor Tokens(int count) =>
            new(Enumerable.Range(0, count * modelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), 1, count, modelDim);
        var prompt = Tokens(Prompt);
        var token = Tokens(1);

        Console.WriteLine($"## A silo's allocations per streamed decode step: one silo, demo model, context {Prompt} to {Prompt + steps}; " +
                          $"{Environment.ProcessorCount} cores\n");
        Console.WriteLine("| round | allocated per step | gen-2 collections per 1,000 steps |");
        Console.WriteLine("| ---: | ---: | ---: |");
        // Round 0 warms the JIT and the silo's pools; it is printed but not a result.
        for (int round = 0; round <= rounds; round++)
        {
            string id = (await client.OpenSessionAsync(Model, 0, Prompt + steps, cancellationToken)).Id;
            await client.DecodeAsync(id, prompt, cancellationToken);
            var before = await SiloGcCounters.ReadAsync(http, cancellationToken);
            await using (var stream = await client.OpenDecodeStreamAsync(id, cancellationToken))
                for (int step = 0; step < steps; step++) await stream.StepAsync(token, cancellationToken);
            var after = await SiloGcCounters.ReadAsync(http, cancellationToken);
            await client.CloseSessionAsync(id, cancellationToken);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {(round == 0 ? "warm-up" : round.ToString(CultureInfo.InvariantCulture))} | {(after.Allocated - before.Allocated) / 1024.0 / steps:F1} KB | " +
                $"{(after.Gen2 - before.Gen2) * 1000.0 / steps:F1} |"));
        }
        return 0;
    }
}
