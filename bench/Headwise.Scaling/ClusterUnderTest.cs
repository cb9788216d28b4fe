using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Scaling;

/// <summary>N silo processes on loopback in one localhost cluster, with the demo model spread evenly over them.</summary>
internal sealed class ClusterUnderTest : IAsyncDisposable
{
    private readonly List<SiloProcess> _silos;

    private ClusterUnderTest(List<SiloProcess> silos) => _silos = silos;

    public IReadOnlyList<SiloProcess> Silos => _silos;

    /// <param name="cpus">Per silo, a taskset CPU list that pins it, or null; null for none pinned.</param>
    public static async Task<ClusterUnderTest> StartAsync(string siloDll, int count, IReadOnlyList<string?>? cpus = null,
        IReadOnlyDictionary<string, string>? settings = null)
    {
        var common = new Dictionary<string, string>
        {
            ["Headwise__Speed"] = "100",
            ["Headwise__RebalanceIdleSeconds"] = "0",
            ["Logging__LogLevel__Default"] = "Warning",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string>()) common[key] = value;
        var first = SiloProcess.Start(siloDll, common, cpus?[0]);
        await first.WaitUntilHealthyAsync();
        var silos = new List<SiloProcess> { first };
        for (int i = 1; i < count; i++)
        {
            silos.Add(SiloProcess.Start(siloDll, new Dictionary<string, string>(common)
            {
                ["Headwise__DemoModel"] = "false",
                ["Headwise__PrimarySiloPort"] = first.SiloPort.ToString(),
            }, cpus?[i]));
        }
        await Task.WhenAll(silos.Skip(1).Select(s => s.WaitUntilHealthyAsync()));
        var cluster = new ClusterUnderTest(silos);
        await cluster.SpreadDemoAsync();
        return cluster;
    }

    private async Task SpreadDemoAsync()
    {
        await using var client = new GrpcAttentionClient(_silos[0].GrpcAddress);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            await client.RebalanceAsync("demo");
            var model = await client.GetModelAsync("demo");
            var counts = model.Heads.GroupBy(h => h.Silo).Select(g => g.Count()).ToArray();
            if (counts.Length == _silos.Count && counts.Max() - counts.Min() <= 1) return;
            await Task.Delay(500);
        }
        throw new TimeoutException($"the demo model's heads did not spread over {_silos.Count} silos.");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var silo in Enumerable.Reverse(_silos)) await silo.DisposeAsync();
    }
}
