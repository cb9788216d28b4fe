using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Grains.Forward;
using Headwise.Kernels;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests.Forward;

/// <summary>
/// Two real silos in this process whose tensor channels share one directory, as silos of one host share /dev/shm:
/// X and the partial sum of a pass travel through files there, the frames carry only their headers, and the answer is
/// the float64 oracle's. (<see cref="PartialSumClusterTests"/> runs the same path over TCP.)
/// </summary>
public sealed class SharedMemoryChannelClusterTests : IAsyncLifetime
{
    private static readonly string SharedDirectory = Directory.CreateTempSubdirectory("headwise-shm-cluster-").FullName;
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage(StorageNames.Weights);
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 100, tensorSharedMemory: SharedDirectory);
            silo.Services.Configure<ScatterOptions>(o => o.OutputProjection = OutputProjectionChoice.PartialSums);
        }
    }

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(2);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        Directory.Delete(SharedDirectory, recursive: true);
    }

    [Fact]
    public async Task X_and_the_partial_sum_cross_through_shared_memory_and_the_answer_matches_the_oracle()
    {
        var grains = _cluster.Client;
        // D = 64, 8 heads with biases: at T = 320, X and the partial sum are 80 KB, past TensorChannel.MinimumBytes.
        var spec = new AttentionSpec { ModelDim = 64, HeadCount = 8, LayerCount = 1, Bias = true };
        spec = (await grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create("shm", spec)).Spec;
        var weights = SeededWeights.Create(spec, seed: 21, std: 0.2f);
        var model = await WeightUpload.StoreAsync(grains, "shm", weights);
        Assert.Equal(2, model.Heads.Select(h => h.Silo).Distinct().Count());
        var channels = _cluster.Silos.Cast<InProcessSiloHandle>().Select(s => s.SiloHost.Services.GetRequiredService<TensorChannel>()).ToArray();
        Assert.All(channels, c => Assert.NotNull(c.SharedMemoryMarker));

        const int tokens = 320;
        for (int pass = 0; pass < 3; pass++)
        {
            var random = new Random(pass);
            var x = Enumerable.Range(0, tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            long before = channels.Sum(c => c.FramesThroughSharedMemory), tcpBefore = channels.Sum(c => c.FramesReceived) - before;

            var result = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("shm", 0)).Forward(new ForwardCommand
            {
                Batch = 1, Tokens = tokens, ModelDim = spec.ModelDim, Input = FloatBytes.ToBytes(x), Causal = pass % 2 == 0,
            });

            var (expected, _) = LayerOracle.Forward(spec, weights[0], x, 1, tokens, causal: pass % 2 == 0);
            Tolerance.AssertClose(expected.Select(v => (float)v).ToArray(), FloatBytes.AsFloats(result.Output), $"pass {pass}");
            // X to the other silo and its partial sum back: two frames, both through the directory, none with a payload on TCP.
            Assert.Equal(2, channels.Sum(c => c.FramesThroughSharedMemory) - before);
            Assert.Equal(tcpBefore, channels.Sum(c => c.FramesReceived) - channels.Sum(c => c.FramesThroughSharedMemory));
        }
        // Every payload file was deleted by its reader: only the two channels' markers are left.
        Assert.Equal(channels.Select(c => c.SharedMemoryMarker).Order(), Directory.GetFiles(SharedDirectory).Select(Path.GetFileName).Order());
    }
}
