using System.Globalization;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Scaling;

/// <summary>
/// What one forward pass costs a silo's garbage collector, read from the silo's own runtime metrics (/metrics): the
/// managed bytes it allocated per pass and its gen-2 collections per 100 passes, over a run of passes on one silo, inline
/// and through shared memory. Large arrays (X, Y: megabytes) land on the large-object heap, whose growth triggers gen-2
/// collections; a pass whose arrays come from a pool allocates only its small objects.
/// </summary>
internal static class PassAllocations
{
    public static async Task RunAsync(string siloDll, int[] tokenCounts, int passes)
    {
        await using var cluster = await ClusterUnderTest.StartAsync(siloDll, 1);
        var silo = cluster.Silos[0];
        using var http = new HttpClient { BaseAddress = silo.WebAddress };
        var invariant = CultureInfo.InvariantCulture;
        Console.WriteLine($"## A silo's allocations per forward pass (GPT-2-small shape, one silo, {passes} passes a row, after a warm-up)\n");
        Console.WriteLine("| T | X and Y | allocated per pass | gen-2 collections per 100 passes |");
        Console.WriteLine("|---|---|---|---|");
        foreach (int tokens in tokenCounts)
        {
            foreach (var mode in new[] { SharedMemoryMode.Off, SharedMemoryMode.On })
            {
                await using var client = new GrpcAttentionClient(silo.GrpcAddress, new GrpcAttentionClientOptions { SharedMemory = mode });
                var random = new Random(tokens);
                var x = Enumerable.Range(0, tokens * 768).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
                var request = new AttentionInput { Input = new FloatTensor(x, 1, tokens, 768) };
                await Warmup.RunAsync(() => client.ForwardAsync("demo", request), Warmup.Default, [silo.WebAddress]);
                var before = await SiloGcCounters.ReadAsync(http);
                for (int i = 0; i < passes; i++) await client.ForwardAsync("demo", request);
                var after = await SiloGcCounters.ReadAsync(http);
                Console.WriteLine(string.Create(invariant,
                    $"| {tokens} | {(mode == SharedMemoryMode.On ? "shared memory" : "inline")} | {(after.Allocated - before.Allocated) / passes:N0} B | {(after.Gen2 - before.Gen2) * 100.0 / passes:F1} |"));
            }
        }
    }
}
