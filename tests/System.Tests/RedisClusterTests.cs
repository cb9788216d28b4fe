using Headwise.Client;
using Headwise.Contracts;
using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>
/// Cluster mode as deployed: silo processes on loopback, membership and grain storage in a real redis-server.
/// </summary>
public sealed class RedisClusterTests
{
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-small-shape");

    private static Dictionary<string, string> RedisSilo(RedisServer redis, int rebalanceIdleSeconds = 0) => new()
    {
        ["Headwise__Clustering"] = "Redis",
        ["Headwise__Storage"] = "Redis",
        ["Headwise__Redis"] = redis.ConnectionString,
        ["Headwise__DemoModel"] = "false",
        // No Headwise__Speed: each silo measures its own, and on a busy 2-core machine those probes are noise. Silos
        // with the same kernel and cores are equal all the same, so the spread must be exact (HeadAllocation).
        ["Headwise__RebalanceIdleSeconds"] = rebalanceIdleSeconds.ToString(),
    };

    [Fact]
    public async Task Heads_spread_evenly_move_when_silos_leave_and_join_and_answers_stay_exact()
    {
        await using var redis = await RedisServer.StartAsync();
        var silos = new List<SiloProcess>();
        try
        {
            for (int i = 0; i < 3; i++) silos.Add(SiloProcess.Start(BuiltPrograms.SiloDll, RedisSilo(redis, rebalanceIdleSeconds: 2)));
            await Task.WhenAll(silos.Select(s => s.WaitUntilHealthyAsync()));
            await using var orleans = await RedisClusterClient.ConnectAsync(redis.ConnectionString);
            await orleans.WaitForActiveSilosAsync(silos.Select(s => s.SiloPort).ToArray());

            await using var client = new GrpcAttentionClient(silos[0].GrpcAddress);
            await client.CreateModelAsync("spread", Golden.Spec);
            await client.UploadWeightsAsync("spread", new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);

            // 12 heads over 3 equal silos: 4/4/4, in ModelInfo and in the reports of a forward through every gateway.
            // A silo that just joined may not be known to the placing silo yet; re-balancing converges once it is.
            AssertSpread(await WaitForSpreadAsync(client, "spread", silos, 4, rebalance: true), silos, 4);
            foreach (var silo in silos)
            {
                await using var gateway = new GrpcAttentionClient(silo.GrpcAddress);
                var output = await ForwardAsync(gateway);
                Assert.Equal(3, output.Heads.Select(h => h.Silo).Distinct().Count());
                // X crosses the network once per remote silo, not once per head; nothing is sent to the coordinator's own silo.
                long inputBytes = Golden.Input.Length * sizeof(float);
                Assert.Equal(3, output.Silos.Count);
                Assert.Equal(2, output.Silos.Count(t => t.BytesSent == inputBytes));
                Assert.Equal(1, output.Silos.Count(t => t.BytesSent == 0));
            }

            // bf16 on the wire halves the bytes sent and stays within bf16's precision.
            var bf16 = await client.ForwardAsync("spread", Input(bf16Wire: true));
            Assert.Equal(2, bf16.Silos.Count(t => t.BytesSent == Golden.Input.Length * sizeof(ushort)));
            Tolerance.AssertClose(Golden.Expected("expected.0.causal"), bf16.Output.Data.Span, "bf16 wire", maxAbs: 5e-3, relativeFrobenius: 5e-3);

            // A silo leaves gracefully: its heads come back on the others from Redis, answers stay exact.
            var leaving = silos[2];
            await leaving.DisposeAsync();
            silos.Remove(leaving);
            await orleans.WaitForActiveSilosAsync(silos.Select(s => s.SiloPort).ToArray());
            var afterLeave = await ForwardAsync(client);
            Assert.DoesNotContain($"127.0.0.1:{leaving.SiloPort}", afterLeave.Heads.Select(h => h.Silo));

            // A silo joins: once the layer's heads are idle, the coordinator re-balances on its own (no RPC).
            var joining = SiloProcess.Start(BuiltPrograms.SiloDll, RedisSilo(redis, rebalanceIdleSeconds: 2));
            silos.Add(joining);
            await joining.WaitUntilHealthyAsync();
            await orleans.WaitForActiveSilosAsync(silos.Select(s => s.SiloPort).ToArray());
            var model = await WaitForSpreadAsync(client, "spread", silos, 4, rebalance: false);
            AssertSpread(model, silos, 4);
            var afterJoin = await ForwardAsync(client);
            Assert.Contains($"127.0.0.1:{joining.SiloPort}", afterJoin.Heads.Select(h => h.Silo));
        }
        finally
        {
            // Silos before Redis: a silo whose Redis vanished hangs in membership reads.
            foreach (var silo in silos) await silo.DisposeAsync();
        }
    }

    [Fact]
    public async Task Weights_survive_a_restart_of_every_silo_and_rebalance_spreads_a_new_silo()
    {
        await using var redis = await RedisServer.StartAsync();
        await using (var first = SiloProcess.Start(BuiltPrograms.SiloDll, RedisSilo(redis)))
        {
            await first.WaitUntilHealthyAsync();
            await using var client = new GrpcAttentionClient(first.GrpcAddress);
            await client.CreateModelAsync("durable", Golden.Spec);
            await client.UploadWeightsAsync("durable", new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
        }

        var silos = new[] { SiloProcess.Start(BuiltPrograms.SiloDll, RedisSilo(redis)), SiloProcess.Start(BuiltPrograms.SiloDll, RedisSilo(redis)) };
        try
        {
            await Task.WhenAll(silos.Select(s => s.WaitUntilHealthyAsync()));
            await using var orleans = await RedisClusterClient.ConnectAsync(redis.ConnectionString);
            await orleans.WaitForActiveSilosAsync(silos.Select(s => s.SiloPort).ToArray());
            await using var client = new GrpcAttentionClient(silos[1].GrpcAddress);

            var model = await client.GetModelAsync("durable");
            Assert.True(model.Ready);
            var output = await client.ForwardAsync("durable", Input(bf16Wire: false));
            Tolerance.AssertClose(Golden.Expected("expected.0.causal"), output.Output.Data.Span, "after a full restart");

            // The explicit re-balance RPC (idle re-balancing is off in this cluster) evens the spread: 6/6,
            // while forwards keep flowing through the other gateway: none fails, every answer exact.
            using var stopLoad = new CancellationTokenSource();
            await using var loadClient = new GrpcAttentionClient(silos[0].GrpcAddress);
            var load = Task.Run(async () =>
            {
                int served = 0;
                while (!stopLoad.IsCancellationRequested)
                {
                    var answer = await loadClient.ForwardAsync("durable", Input(bf16Wire: false));
                    Tolerance.AssertClose(Golden.Expected("expected.0.causal"), answer.Output.Data.Span, "during re-balancing");
                    served++;
                }
                return served;
            });
            Assert.True(await client.RebalanceAsync("durable") >= 0);
            AssertSpread(await WaitForSpreadAsync(client, "durable", silos, 6, rebalance: true), silos, 6);
            stopLoad.Cancel();
            Assert.True(await load > 0);
        }
        finally
        {
            foreach (var silo in silos) await silo.DisposeAsync();
        }
    }

    private static async Task<AttentionOutput> ForwardAsync(IAttentionClient client)
    {
        var output = await client.ForwardAsync("spread", Input(bf16Wire: false));
        Tolerance.AssertClose(Golden.Expected("expected.0.causal"), output.Output.Data.Span, "expected.0.causal");
        return output;
    }

    private static AttentionInput Input(bool bf16Wire) => new()
    {
        Input = new FloatTensor(Golden.Input, Golden.Batch, Golden.Tokens, Golden.Spec.ModelDim),
        Causal = true,
        Bf16Wire = bf16Wire,
    };

    private static async Task<ModelDescription> WaitForSpreadAsync(IAttentionClient client, string name, IEnumerable<SiloProcess> silos,
        int perSilo, bool rebalance)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var model = await client.GetModelAsync(name);
        while (!IsSpread(model, silos, perSilo) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(1000);
            if (rebalance) await client.RebalanceAsync(name);
            model = await client.GetModelAsync(name);
        }
        return model;
    }

    private static bool IsSpread(ModelDescription model, IEnumerable<SiloProcess> silos, int perSilo) =>
        model.Heads.GroupBy(h => h.Silo).Select(g => g.Key).Order().SequenceEqual(silos.Select(s => $"127.0.0.1:{s.SiloPort}").Order())
        && model.Heads.GroupBy(h => h.Silo).All(g => g.Count() == perSilo);

    private static void AssertSpread(ModelDescription model, IEnumerable<SiloProcess> silos, int perSilo)
    {
        var expected = silos.Select(s => $"127.0.0.1:{s.SiloPort}").Order().ToArray();
        var counts = model.Heads.GroupBy(h => h.Silo).OrderBy(g => g.Key).ToArray();
        Assert.Equal(expected, counts.Select(g => g.Key).ToArray());
        Assert.All(counts, g => Assert.Equal(perSilo, g.Count()));
    }
}
