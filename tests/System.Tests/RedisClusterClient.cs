using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;

namespace Headwise.SystemTests;

/// <summary>An Orleans client of a Redis-clustered Headwise cluster, to read its membership as Orleans sees it.</summary>
public sealed class RedisClusterClient : IAsyncDisposable
{
    private readonly IHost _host;

    private RedisClusterClient(IHost host) => _host = host;

    public IClusterClient Client => _host.Services.GetRequiredService<IClusterClient>();

    public static async Task<RedisClusterClient> ConnectAsync(string redis)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(o => o.ClusterId = o.ServiceId = "headwise");
            client.UseRedisClustering(redis);
        });
        var host = builder.Build();
        await host.StartAsync();
        return new RedisClusterClient(host);
    }

    /// <summary>Waits until exactly the silos on <paramref name="siloPorts"/> are active.</summary>
    public async Task WaitForActiveSilosAsync(params int[] siloPorts)
    {
        var expected = siloPorts.Select(p => $"127.0.0.1:{p}").ToHashSet();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        HashSet<string> active = [];
        while (DateTime.UtcNow < deadline)
        {
            var hosts = await Client.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
            active = hosts.Keys.Select(s => s.Endpoint.ToString()).ToHashSet();
            if (active.SetEquals(expected)) return;
            await Task.Delay(250);
        }
        throw new TimeoutException($"active silos {string.Join(", ", active)}; expected {string.Join(", ", expected)}.");
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
