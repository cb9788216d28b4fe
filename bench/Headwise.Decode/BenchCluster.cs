using System.Globalization;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Decode;

/// <summary>
/// Silo processes on loopback for a bench run: the first loads the demo model, the others join it, and the demo's
/// heads are spread over all of them before the run measures anything.
/// </summary>
internal sealed class BenchCluster : IAsyncDisposable
{
    private readonly List<SiloProcess> _processes;

    private BenchCluster(List<SiloProcess> processes) => _processes = processes;

    public Uri GrpcAddress => _processes[0].GrpcAddress;

    /// <summary>Every silo's web address (its /metrics tell when its JIT is quiet).</summary>
    public IReadOnlyList<Uri> WebAddresses => _processes.Select(p => p.WebAddress).ToList();

    /// <param name="settings">Headwise__* settings every silo gets on top of the bench's defaults.</param>
    public static async Task<BenchCluster> StartAsync(string siloDll, int silos, IReadOnlyDictionary<string, string> settings,
        CancellationToken cancellationToken)
    {
        var common = new Dictionary<string, string>
        {
            ["Headwise__RebalanceIdleSeconds"] = "0",
            ["Headwise__Speed"] = "100",
            ["Logging__LogLevel__Default"] = "Warning",
        };
        foreach (var (key, value) in settings) common[key] = value;
        var first = SiloProcess.Start(siloDll, common);
        var processes = new List<SiloProcess> { first };
        var cluster = new BenchCluster(processes);
        try
        {
            await first.WaitUntilHealthyAsync();
            for (int i = 1; i < silos; i++)
                processes.Add(SiloProcess.Start(siloDll, new Dictionary<string, string>(common)
                {
                    ["Headwise__DemoModel"] = "false",
                    ["Headwise__PrimarySiloPort"] = first.SiloPort.ToString(CultureInfo.InvariantCulture),
                }));
            await Task.WhenAll(processes.Skip(1).Select(p => p.WaitUntilHealthyAsync()));
            if (silos > 1) await SpreadHeads(first.GrpcAddress, silos, cancellationToken);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private static async Task SpreadHeads(Uri address, int silos, CancellationToken cancellationToken)
    {
        await using var client = new GrpcAttentionClient(address);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            await client.RebalanceAsync("demo", cancellationToken);
            var heads = (await client.GetModelAsync("demo", cancellationToken)).Heads;
            if (heads.Select(h => h.Silo).Distinct().Count() == silos) return;
            if (DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"the demo's heads stayed on {heads.Select(h => h.Silo).Distinct().Count()} of {silos} silos.");
            await Task.Delay(500, cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in Enumerable.Reverse(_processes)) await process.DisposeAsync();
    }
}
