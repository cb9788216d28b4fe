using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;
using Headwise.Client;
using Headwise.TestSupport;
using Headwise.V1;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Headwise.SystemTests;

/// <summary>
/// A rolling update loses no call: three silo processes (Redis clustering and storage), a plain gRPC client without
/// retries that balances over the gateways a load balancer would offer it (those whose /healthz says ok,
/// <see cref="ReadinessResolver"/>), steady load, and SIGTERM to one of the two gateway silos mid-way. The silo reports
/// draining, serves on until it is out of rotation, finishes the calls it has and leaves; every call is answered and right.
/// </summary>
public sealed class GatewayDrainTests(ITestOutputHelper log)
{
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-small-shape");

    [Fact]
    public async Task SIGTERM_to_a_gateway_silo_under_load_loses_no_call()
    {
        await using var redis = await RedisServer.StartAsync();
        var silos = new List<SiloProcess>();
        try
        {
            for (int i = 0; i < 3; i++) silos.Add(SiloProcess.Start(BuiltPrograms.SiloDll, RedisSilos.Environment(redis)));
            await Task.WhenAll(silos.Select(silo => silo.WaitUntilHealthyAsync()));
            await using var orleans = await RedisClusterClient.ConnectAsync(redis.ConnectionString);
            await orleans.WaitForActiveSilosAsync(silos.Select(silo => silo.SiloPort).ToArray());
            await using (var admin = new GrpcAttentionClient(silos[0].GrpcAddress))
            {
                await admin.CreateModelAsync("drain", Golden.Spec);
                await admin.UploadWeightsAsync("drain", new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
                await admin.RebalanceAsync("drain");
            }

            // Round robin over the two gateways that report ready, no retry policy.
            var services = new ServiceCollection();
            services.AddSingleton<ResolverFactory>(new ReadinessResolver.Factory(silos.Take(2).ToList()));
            using var channel = GrpcChannel.ForAddress("ready:///headwise", new GrpcChannelOptions
            {
                Credentials = ChannelCredentials.Insecure,
                ServiceConfig = new ServiceConfig { LoadBalancingConfigs = { new RoundRobinConfig() } },
                ServiceProvider = services.BuildServiceProvider(),
            });
            var client = new Attention.AttentionClient(channel);
            var request = GoldenForwardRequest.For("drain", Golden);
            float[] expected = Golden.Expected("expected.0.causal");
            await client.ForwardAsync(request);

            var failures = new List<string>();
            int ok = 0, wrong = 0;
            var clock = Stopwatch.StartNew();
            var running = new List<Task>();
            bool terminated = false;
            // 140 calls due every 100 ms (a late one goes at once): a stalled machine delays calls, it does not drop them.
            const int calls = 140;
            for (int n = 0; n < calls; n++)
            {
                var due = TimeSpan.FromMilliseconds(n * 100);
                if (due - clock.Elapsed is { Ticks: > 0 } wait) await Task.Delay(wait);
                if (!terminated && clock.Elapsed > TimeSpan.FromSeconds(4))
                {
                    using var term = Process.Start(new ProcessStartInfo("kill", $"-TERM {silos[1].ProcessId}") { UseShellExecute = false })!;
                    await term.WaitForExitAsync();
                    log.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s: SIGTERM silo {silos[1].SiloPort}");
                    terminated = true;
                }
                running.Add(Task.Run(async () =>
                {
                    try
                    {
                        var response = await client.ForwardAsync(request, deadline: DateTime.UtcNow.AddSeconds(15));
                        var output = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(response.Output.Data.Span).ToArray();
                        bool close = expected.Zip(output).All(p => Math.Abs(p.First - p.Second) <= Tolerance.MaxAbs) && output.Length == expected.Length;
                        if (close) Interlocked.Increment(ref ok); else Interlocked.Increment(ref wrong);
                    }
                    catch (RpcException e)
                    {
                        lock (failures) failures.Add($"{clock.Elapsed.TotalSeconds:F1} s: {e.StatusCode}: {e.Status.Detail}");
                    }
                }));
            }
            await Task.WhenAll(running);
            int exit = await silos[1].WaitForExitAsync(TimeSpan.FromSeconds(60));
            log.WriteLine($"{ok} right, {wrong} wrong, {failures.Count} failed; the terminated silo exited with {exit}");

            Assert.True(failures.Count == 0, string.Join("\n", failures));
            Assert.Equal(0, wrong);
            Assert.Equal(calls, ok);
            Assert.Equal(0, exit);
        }
        finally
        {
            foreach (var silo in silos) await silo.DisposeAsync();
        }
    }

}
