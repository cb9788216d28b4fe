using Headwise.Client;
using Headwise.Silo;
using Headwise.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Headwise.Client.Tests;

/// <summary>
/// One real silo in this process, started exactly as `dotnet run --project src/Silo` starts it but on free
/// ports and with small limits, plus an Orleans client connected to its gateway.
/// </summary>
public sealed class SiloFixture : IAsyncLifetime
{
    public const int MaxTokens = 256;
    public const int MaxBatch = 8;
    public const int MaxRequestBytes = 2 << 20;
    /// <summary>Room for the golden cases with every answer (gpt2-small-shape: 1.5 MiB), not for attention weights at the
    /// largest batch and tokens (8 MiB at 4 heads).</summary>
    public const int MaxResponseBytes = 2 << 20;
    public const int MaxOpenSessions = 200;
    /// <summary>Room for the shared-memory tests (8 concurrent passes, the region-limit row), few enough to reach.</summary>
    public const int MaxSharedMemoryRegions = 32;

    private WebApplication? _silo;
    private IHost? _orleansClientHost;

    public Uri GrpcAddress { get; private set; } = null!;
    public Uri WebAddress { get; private set; } = null!;
    public IClusterClient ClusterClient => _orleansClientHost!.Services.GetRequiredService<IClusterClient>();

    /// <summary>The silo's own services (the gateway's and the grains' singletons).</summary>
    public IServiceProvider SiloServices => _silo!.Services;

    public async Task InitializeAsync()
    {
        var ports = FreePorts.Take(4);
        _silo = HeadwiseSilo.Build(
        [
            $"--Headwise:SiloPort={ports[0]}", $"--Headwise:GatewayPort={ports[1]}",
            $"--Headwise:GrpcPort={ports[2]}", $"--Headwise:WebPort={ports[3]}",
            $"--Headwise:MaxTokens={MaxTokens}", $"--Headwise:MaxBatch={MaxBatch}", $"--Headwise:MaxRequestBytes={MaxRequestBytes}",
            $"--Headwise:MaxResponseBytes={MaxResponseBytes}", $"--Headwise:Sessions:MaxOpenPerSilo={MaxOpenSessions}",
            $"--Headwise:MaxSharedMemoryRegions={MaxSharedMemoryRegions}",
            "--Logging:LogLevel:Default=Warning",
        ]);
        await _silo.StartAsync();
        GrpcAddress = new Uri($"http://127.0.0.1:{ports[2]}");
        WebAddress = new Uri($"http://127.0.0.1:{ports[3]}");
        await WaitUntilHealthy();

        var clientBuilder = Host.CreateApplicationBuilder();
        clientBuilder.Logging.SetMinimumLevel(LogLevel.Warning);
        clientBuilder.UseOrleansClient(client => client.UseLocalhostClustering(ports[1]));
        _orleansClientHost = clientBuilder.Build();
        await _orleansClientHost.StartAsync();
    }

    public IAttentionClient CreateGrpcClient() => new GrpcAttentionClient(GrpcAddress);

    public IAttentionClient CreateOrleansClient() => new OrleansAttentionClient(ClusterClient);

    private async Task WaitUntilHealthy()
    {
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if ((await http.GetAsync(new Uri(WebAddress, "/healthz"))).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            await Task.Delay(100);
        }
        throw new TimeoutException("the silo did not report healthy within 60 s.");
    }

    public async Task DisposeAsync()
    {
        if (_orleansClientHost is not null) await _orleansClientHost.StopAsync();
        if (_silo is not null)
        {
            await _silo.StopAsync();
            await _silo.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class SiloCollection : ICollectionFixture<SiloFixture>
{
    public const string Name = "one silo";
}
