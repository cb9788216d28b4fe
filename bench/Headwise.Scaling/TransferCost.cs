using System.Diagnostics;
using Headwise.Contracts;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Headwise.Scaling;

/// <summary>
/// The cost of one silo-to-silo message as a function of its size, with no compute in it: an Orleans client
/// on silo A's gateway echoes payloads through the relay on A and through the relay on B; the difference is
/// one hop from A to B and back (the reply is a few bytes).
/// </summary>
internal static class TransferCost
{
    public static readonly int[] Sizes = [1 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20];

    public static async Task<List<(double Bytes, double Ms)>> MeasureAsync(SiloProcess first, SiloProcess second, int repetitions)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(client => client.UseLocalhostClustering(first.GatewayPort));
        using var host = builder.Build();
        await host.StartAsync();
        var grains = host.Services.GetRequiredService<IClusterClient>();
        var local = grains.GetGrain<ISiloRelayGrain>(GrainKeys.Relay($"127.0.0.1:{first.SiloPort}"));
        var remote = grains.GetGrain<ISiloRelayGrain>(GrainKeys.Relay($"127.0.0.1:{second.SiloPort}"));

        var points = new List<(double Bytes, double Ms)>();
        foreach (int size in Sizes)
        {
            var payload = new byte[size];
            Random.Shared.NextBytes(payload);
            double localMs = await MedianMs(local, payload, repetitions);
            double remoteMs = await MedianMs(remote, payload, repetitions);
            points.Add((size, remoteMs - localMs));
        }
        await host.StopAsync();
        return points;
    }

    private static async Task<double> MedianMs(ISiloRelayGrain relay, byte[] payload, int repetitions)
    {
        for (int i = 0; i < 3; i++) await relay.Echo(payload);
        var times = new double[repetitions];
        for (int i = 0; i < repetitions; i++)
        {
            long started = Stopwatch.GetTimestamp();
            await relay.Echo(payload);
            times[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[repetitions / 2];
    }
}
