using System.Net;
using System.Net.Sockets;
using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>
/// A cluster-mode silo process (Redis clustering, as in a pod) keeps its Orleans ports on the advertised address only,
/// and its web port refuses the Orleans Dashboard's live trace stream.
/// </summary>
public sealed class ClosedPortsTests(RedisModeSilo silo) : IClassFixture<RedisModeSilo>
{
    // 127.0.0.2 is another address of this machine's loopback (all of 127/8 is local on Linux): a socket bound to
    // 0.0.0.0 answers there, one bound to the advertised 127.0.0.1 does not.
    private static readonly IPAddress OtherLocalAddress = IPAddress.Parse("127.0.0.2");

    [Fact]
    public async Task Orleans_silo_and_gateway_ports_listen_on_the_advertised_address_only()
    {
        // The control: on this machine an any-address listener does answer on 127.0.0.2, so a refusal below means
        // the silo did not bind to every address.
        var any = new TcpListener(IPAddress.Any, 0);
        any.Start();
        try
        {
            Assert.True(await Connects(OtherLocalAddress, ((IPEndPoint)any.LocalEndpoint).Port), "a 0.0.0.0 listener should answer on 127.0.0.2");
        }
        finally
        {
            any.Stop();
        }

        foreach (var (port, name) in new[] { (silo.Process.SiloPort, "silo"), (silo.Process.GatewayPort, "gateway") })
        {
            Assert.True(await Connects(IPAddress.Loopback, port), $"the {name} port {port} should answer on the advertised 127.0.0.1");
            Assert.False(await Connects(OtherLocalAddress, port), $"the {name} port {port} answered on 127.0.0.2: it listens on every address");
        }
    }

    [Fact]
    public async Task The_Orleans_Dashboard_live_trace_stream_is_refused_and_the_dashboard_still_served()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var trace = await http.GetAsync(new Uri(silo.Process.WebAddress, "/orleans/Trace"), HttpCompletionOption.ResponseHeadersRead);
        Assert.True(trace.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Forbidden,
            $"GET /orleans/Trace answered {(int)trace.StatusCode} {trace.StatusCode}; it must be refused (404 or 403).");

        using var dashboard = await http.GetAsync(new Uri(silo.Process.WebAddress, "/orleans/"));
        Assert.Equal(HttpStatusCode.OK, dashboard.StatusCode);
    }

    private static async Task<bool> Connects(IPAddress address, int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(address, port).WaitAsync(TimeSpan.FromSeconds(5));
            return true;
        }
        catch (SocketException exception) when (exception.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return false;
        }
    }
}

/// <summary>One silo process in cluster mode against a real redis-server, for the tests of what it exposes.</summary>
public sealed class RedisModeSilo : IAsyncLifetime
{
    private RedisServer? _redis;

    public SiloProcess Process { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        Process = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string>
        {
            ["Headwise__Clustering"] = "Redis",
            ["Headwise__Storage"] = "Redis",
            ["Headwise__Redis"] = _redis.ConnectionString,
            ["Headwise__DemoModel"] = "false",
        });
        await Process.WaitUntilHealthyAsync();
    }

    public async Task DisposeAsync()
    {
        if (Process is not null) await Process.DisposeAsync();
        if (_redis is not null) await _redis.DisposeAsync();
    }
}
