using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Forward;
using Headwise.Kernels;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests.Forward;

/// <summary>
/// A pass whose silo below is lost is finished by the silo above from storage (<see cref="HeadRescue"/>): three real
/// silos in this process, one of them hung (its compute taken; it accepts the pass and does not answer) or killed; the
/// next passes are answered while it stays lost (hung: its compute held until the test ends) and match the float64 oracle.
/// </summary>
public sealed class SiloLossRescueTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            // Storage that outlives a killed silo, as Redis does (the memory provider keeps its data in grains on the silos).
            silo.Services.AddKeyedSingleton<Orleans.Storage.IGrainStorage>(StorageNames.Weights, (_, _) => new ProcessWideStorage());
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 100);
            silo.Services.Configure<ScatterOptions>(o =>
            {
                o.OutputProjection = OutputProjectionChoice.PartialSums;
                o.ComputeThreads = 1;
                o.HedgeAfterMs = 300;
            });
        }
    }

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(3);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync() => await _cluster.StopAllSilosAsync();

    private sealed record Layer(IGrainFactory Grains, HeadRescue Rescue, float[] Expected, Func<Task<float[]>> Forward);

    private async Task<Layer> CreateLayer(string name)
    {
        var spec = new AttentionSpec { ModelDim = 96, HeadCount = 12, LayerCount = 1, Bias = true };
        var client = _cluster.Client;
        spec = (await client.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create(name, spec)).Spec;
        var weights = SeededWeights.Create(spec, seed: 21, std: 0.2f);
        var model = await WeightUpload.StoreAsync(client, name, weights);
        Assert.Equal(3, model.Heads.Select(h => h.Silo).Distinct().Count());

        // Passes coordinated on the primary silo: its grain factory keeps the coordinator (a stateless worker) there.
        var primary = (InProcessSiloHandle)_cluster.Primary;
        var grains = primary.SiloHost.Services.GetRequiredService<IGrainFactory>();
        const int tokens = 9;
        var random = new Random(3);
        var x = Enumerable.Range(0, tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var (expected, _) = LayerOracle.Forward(spec, weights[0], x, 1, tokens, causal: true);
        async Task<float[]> Forward() => FloatBytes.ToFloats((await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(name, 0)).Forward(
            new ForwardCommand { Batch = 1, Tokens = tokens, ModelDim = spec.ModelDim, Input = FloatBytes.ToBytes(x), Causal = true })).Output);
        var layer = new Layer(grains, primary.SiloHost.Services.GetRequiredService<HeadRescue>(), expected.Select(v => (float)v).ToArray(), Forward);
        var before = await Forward();
        Tolerance.AssertClose(layer.Expected, before, "before the fault");
        return layer;
    }

    [Fact]
    public async Task A_silo_that_hangs_has_its_groups_computed_from_storage_after_the_hedge_time_and_the_answers_stay_right()
    {
        var layer = await CreateLayer("hung");
        long rescuedBefore = layer.Rescue.Rescues;
        // The silo's one compute thread is taken until the end of the test: it accepts the pass and does not answer, as a
        // stopped process. A pass that waited for it would not answer before the gate opens, however slow this machine.
        var victim = (InProcessSiloHandle)_cluster.SecondarySilos[0];
        using var release = new ManualResetEventSlim(false);
        var stuck = victim.SiloHost.Services.GetRequiredService<ComputeScheduler>().Run(() => { release.Wait(TimeSpan.FromSeconds(60)); return 0; });
        try
        {
            string hung = victim.SiloAddress.Endpoint.ToString(), layerKey = GrainKeys.Layer("hung", 0);
            var hedgeBefore = layer.Rescue.HedgeAfter(layerKey);
            for (int pass = 0; pass < 4; pass++)
            {
                // Not suspected: each pass asks the hung silo and waits for the hedge before computing its groups here.
                layer.Rescue.Clear(hung);
                // Far below Orleans' 30 s response timeout, the only other way a pass waiting for the hung silo would end.
                var answer = await layer.Forward().WaitAsync(TimeSpan.FromSeconds(15));
                Tolerance.AssertClose(layer.Expected, answer, $"pass {pass} with a silo hung");
                Assert.False(stuck.IsCompleted, $"pass {pass}: the hung silo's compute thread was released before the test ended");
            }
            Assert.True(layer.Rescue.Rescues - rescuedBefore >= 4, $"{layer.Rescue.Rescues - rescuedBefore} groups were read from storage; the hung silo has 4");
            // Passes that waited for the hedge do not count as the layer's pass time, so the hedge time is what it was.
            // Counted, each hedged pass (300 ms or more) raised it: 4× an average that took a fifth of each.
            Assert.Equal(hedgeBefore, layer.Rescue.HedgeAfter(layerKey));
        }
        finally
        {
            release.Set();
        }
        await stuck;
    }

    [Fact]
    public async Task A_killed_silo_costs_the_next_passes_neither_an_error_nor_seconds()
    {
        var layer = await CreateLayer("killed");
        await _cluster.KillSiloAsync(_cluster.SecondarySilos[^1]);
        for (int pass = 0; pass < 5; pass++)
        {
            var clock = Stopwatch.StartNew();
            var answer = await layer.Forward();
            Tolerance.AssertClose(layer.Expected, answer, $"pass {pass} after the loss");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"pass {pass} after the loss took {clock.Elapsed.TotalMilliseconds:F0} ms");
        }
    }
}
