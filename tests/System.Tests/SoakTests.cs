using System.Diagnostics;
using System.Globalization;
using System.Text;
using Headwise.Client;
using Headwise.Contracts;
using Headwise.TestSupport;
using Orleans.Runtime;
using Xunit.Abstractions;

namespace Headwise.SystemTests;

/// <summary>
/// A long run of forward passes (HEADWISE_SOAK_FORWARDS, e.g. 10,000, at T=128 on the GPT-2-small-shaped demo model)
/// against one silo process with Redis clustering and storage: its resident memory after warm-up stays within 10%
/// and the number of grain activations stays flat. Samples every tenth of the run; HEADWISE_SOAK_REPORT=FILE writes
/// the table (docs/reliability.md has one). It takes minutes, so the default test command leaves the Soak category
/// out; run it with `dotnet test tests/System.Tests --filter Category=Soak`.
/// </summary>
public sealed class SoakTests(ITestOutputHelper log)
{
    private const int Tokens = 128;
    private const int Concurrency = 4;

    [Fact]
    [Trait("Category", "Soak")]
    public async Task Resident_memory_and_activations_stay_flat_over_many_forwards()
    {
        int total = Environment.GetEnvironmentVariable("HEADWISE_SOAK_FORWARDS") is { Length: > 0 } forwards
            ? int.Parse(forwards, CultureInfo.InvariantCulture)
            : 10_000;
        await using var redis = await RedisServer.StartAsync();
        var silo = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string>
        {
            ["Headwise__Clustering"] = "Redis",
            ["Headwise__Storage"] = "Redis",
            ["Headwise__Redis"] = redis.ConnectionString,
            ["Headwise__DemoModel"] = "true",
        });
        try
        {
            await silo.WaitUntilHealthyAsync();
            await using var orleans = await RedisClusterClient.ConnectAsync(redis.ConnectionString);
            await using var client = new GrpcAttentionClient(silo.GrpcAddress);
            var spec = (await client.GetModelAsync("demo")).Spec;
            var random = new Random(1);
            var x = new float[Tokens * spec.ModelDim];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
            var input = new AttentionInput { Input = new FloatTensor(x, 1, Tokens, spec.ModelDim), Causal = true };
            var reference = (await client.ForwardAsync("demo", input)).Output.Data.ToArray();

            var table = new StringBuilder("| forwards | silo RSS MiB | activations | forwards/s |\n| --- | --- | --- | --- |\n");
            var samples = new List<(int Done, double RssMiB, int Activations)>();
            int done = 0, mismatches = 0;
            var clock = Stopwatch.StartNew();
            var lastSample = clock.Elapsed;
            int step = Math.Max(1, total / 10);
            for (int next = step; done < total; next += step)
            {
                int target = Math.Min(next, total);
                await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
                {
                    while (Interlocked.Increment(ref done) <= target)
                    {
                        var y = (await client.ForwardAsync("demo", input)).Output.Data.Span;
                        if (!y.SequenceEqual(reference)) Interlocked.Increment(ref mismatches);
                    }
                    Interlocked.Decrement(ref done);
                }));
                done = target;
                double rss = ResidentMiB(silo.ProcessId);
                int activations = (await orleans.Client.GetGrain<IManagementGrain>(0).GetSimpleGrainStatistics()).Sum(s => s.ActivationCount);
                double rate = step / (clock.Elapsed - lastSample).TotalSeconds;
                lastSample = clock.Elapsed;
                samples.Add((done, rss, activations));
                table.AppendLine(CultureInfo.InvariantCulture, $"| {done} | {rss:F0} | {activations} | {rate:F0} |");
            }
            string report = $"{total} forwards, T={Tokens}, D={spec.ModelDim}, {spec.HeadCount} heads, {Concurrency} concurrent, {clock.Elapsed.TotalSeconds:F0} s\n" + table;
            log.WriteLine(report);
            if (Environment.GetEnvironmentVariable("HEADWISE_SOAK_REPORT") is { Length: > 0 } path) await File.WriteAllTextAsync(path, report);

            Assert.Equal(0, mismatches);
            // Warm-up: the first fifth. After it, RSS within 10% of the warm value and activations unchanged.
            var warm = samples[Math.Min(1, samples.Count - 1)];
            foreach (var sample in samples.Skip(2))
            {
                Assert.True(sample.RssMiB <= warm.RssMiB * 1.10, $"RSS grew from {warm.RssMiB:F0} to {sample.RssMiB:F0} MiB by forward {sample.Done}");
                Assert.Equal(warm.Activations, sample.Activations);
            }
        }
        finally
        {
            await silo.DisposeAsync();
        }
    }

    private static double ResidentMiB(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        }
        return double.NaN;
    }
}
