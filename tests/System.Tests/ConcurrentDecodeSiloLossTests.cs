using Headwise.Client;
using Headwise.Contracts;
using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>
/// Many sessions decoding at once, one token per step (the steps a silo batches across sessions), through kill -9 of a
/// silo holding some of their heads: three silos with Redis clustering and storage, eight sessions with inputs of their
/// own, the third silo killed while every session is half-way. No step fails (the caller does not retry), and every
/// session's outputs equal one causal Forward of its own inputs: a batch that lost a silo re-ran only the lost heads,
/// and no session saw another's tokens.
/// </summary>
public sealed class ConcurrentDecodeSiloLossTests
{
    private const int Sessions = 8;
    private const int Tokens = 24;
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-small-shape");

    [Fact]
    public async Task Concurrent_single_token_sessions_stay_exact_and_unfailed_across_a_killed_silo()
    {
        await using var redis = await RedisServer.StartAsync();
        var silos = new List<SiloProcess>();
        try
        {
            for (int i = 0; i < 3; i++) silos.Add(SiloProcess.Start(BuiltPrograms.SiloDll, RedisSilos.Environment(redis)));
            await Task.WhenAll(silos.Select(s => s.WaitUntilHealthyAsync()));
            await using var orleans = await RedisClusterClient.ConnectAsync(redis.ConnectionString);
            await orleans.WaitForActiveSilosAsync(silos.Select(s => s.SiloPort).ToArray());

            // No retries: a step that fails is a failure of the cluster, not something the SDK may hide.
            await using var client = new GrpcAttentionClient(silos[0].GrpcAddress, new GrpcAttentionClientOptions { MaxAttempts = 1 });
            await client.CreateModelAsync("decode-many", Golden.Spec);
            await client.UploadWeightsAsync("decode-many", new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
            string victim = $"127.0.0.1:{silos[2].SiloPort}";
            var model = await client.GetModelAsync("decode-many");
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (model.Heads.Count(h => h.Layer == 0 && h.Silo == victim) == 0 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(1000);
                await client.RebalanceAsync("decode-many");
                model = await client.GetModelAsync("decode-many");
            }
            Assert.True(model.Heads.Any(h => h.Layer == 0 && h.Silo == victim), $"no head of layer 0 on {victim}");

            int modelDim = Golden.Spec.ModelDim;
            var random = new Random(11);
            var inputs = Enumerable.Range(0, Sessions)
                .Select(_ => Enumerable.Range(0, Tokens * modelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray()).ToArray();
            // Two sessions share all but their last token: a session that saw the other's rows would differ there.
            inputs[1].AsSpan(0, (Tokens - 1) * modelDim).CopyTo(inputs[0]);
            var expected = new float[Sessions][];
            for (int s = 0; s < Sessions; s++)
                expected[s] = (await client.ForwardAsync("decode-many", new AttentionInput
                {
                    Input = new FloatTensor(inputs[s], 1, Tokens, modelDim),
                    Causal = true,
                })).Output.Data.ToArray();

            var ids = new string[Sessions];
            for (int s = 0; s < Sessions; s++) ids[s] = (await client.OpenSessionAsync("decode-many", 0, Tokens)).Id;
            var halfWay = new CountdownEvent(Sessions);
            var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var killer = Task.Run(async () =>
            {
                halfWay.Wait(TimeSpan.FromSeconds(120));
                silos[2].Kill();
                killed.SetResult();
                await Task.CompletedTask;
            });
            var actual = await Task.WhenAll(Enumerable.Range(0, Sessions).Select(async s =>
            {
                var output = new float[Tokens * modelDim];
                for (int t = 0; t < Tokens; t++)
                {
                    if (t == Tokens / 2)
                    {
                        halfWay.Signal();
                        await killed.Task; // every session steps on past the kill, in flight together
                    }
                    var step = await client.DecodeAsync(ids[s], new FloatTensor(inputs[s].AsSpan(t * modelDim, modelDim).ToArray(), 1, 1, modelDim));
                    step.Output.Data.Span.CopyTo(output.AsSpan(t * modelDim));
                }
                return output;
            }));
            await killer;

            Assert.True(silos[2].HasExited);
            for (int s = 0; s < Sessions; s++)
                Tolerance.AssertClose(expected[s], actual[s], $"session {s} decoded across a killed silo");
            // The twin sessions agree up to their last token and differ there, as their own Forwards do.
            Assert.NotEqual(expected[0].AsSpan((Tokens - 1) * modelDim).ToArray(), expected[1].AsSpan((Tokens - 1) * modelDim).ToArray());
            foreach (var id in ids) await client.CloseSessionAsync(id);
        }
        finally
        {
            foreach (var silo in Enumerable.Reverse(silos)) await silo.DisposeAsync();
        }
    }
}
