using System.Net;
using System.Net.Sockets;
using Headwise.Silo;
using Microsoft.AspNetCore.Builder;

namespace Headwise.Cli.Tests;

/// <summary>
/// One real, embedded Headwise silo on free loopback ports, with the demo model loaded, shared by every test of the
/// "silo" collection and stopped after the last one.
/// </summary>
public sealed class SiloFixture : IAsyncLifetime
{
    private WebApplication? _app;

    /// <summary>The gRPC gateway's address, for --server.</summary>
    public string Server { get; private set; } = "";

    public async Task InitializeAsync()
    {
        int[] ports = FreePorts(4);
        _app = HeadwiseSilo.Build(
        [
            $"--Headwise:SiloPort={ports[0]}",
            $"--Headwise:GatewayPort={ports[1]}",
            $"--Headwise:GrpcPort={ports[2]}",
            $"--Headwise:WebPort={ports[3]}",
            "--Logging:LogLevel:Default=Warning",
        ]);
        await _app.StartAsync();
        Server = $"http://127.0.0.1:{ports[2]}";

        // /healthz turns 200 once the demo model is loaded.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                using var response = await http.GetAsync($"http://127.0.0.1:{ports[3]}/healthz");
                if (response.StatusCode == HttpStatusCode.OK) return;
            }
            catch (HttpRequestException)
            {
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the silo did not report healthy within 60 s.");
            await Task.Delay(100);
        }
    }

    public async Task DisposeAsync()
    {
        if (_app is null) return;
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>Free ports below the ephemeral range (see Headwise.TestSupport.FreePorts).</summary>
    public static int[] FreePorts(int count) => Headwise.TestSupport.FreePorts.Take(count);
}

[CollectionDefinition(Name)]
public sealed class SiloCollection : ICollectionFixture<SiloFixture>
{
    public const string Name = "silo";
}
