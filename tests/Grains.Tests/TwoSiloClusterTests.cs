using Orleans.Serialization.Cloning;
using Microsoft.Extensions.DependencyInjection;
using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Kernels;
using Headwise.TestSupport;
using Orleans.TestingHost;
using Xunit.Abstractions;

namespace Headwise.Grains.Tests;

/// <summary>
/// Two real silos in this process (Orleans TestingHost): a golden case computed with its heads spread over
/// both, so every forward pass crosses a silo boundary.
/// </summary>
public sealed class TwoSiloClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    /// <summary>Each silo's calls for a layer's projection, with whether W_O came with the answer.</summary>
    private sealed class ProjectionCalls(ILocalSiloDetails silo) : IOutgoingGrainCallFilter
    {
        public static readonly System.Collections.Concurrent.ConcurrentQueue<(string Silo, string Method, bool WithOutputWeights)> Seen = new();

        public async Task Invoke(IOutgoingGrainCallContext context)
        {
            await context.Invoke();
            if (context.Result is LayerProjection projection)
                Seen.Enqueue((silo.SiloAddress.ToString(), context.InterfaceMethod.Name, projection.OutputWeights.Length > 0));
        }
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage(StorageNames.Weights);
            silo.AddOutgoingGrainCallFilter<ProjectionCalls>();
            // Equal advertised speeds: the even 6/6 spread is then exact (a speed measured on a busy machine is noise).
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 100);
        }
    }

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(2);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync() => await _cluster.StopAllSilosAsync();

    /// <summary>Creates <paramref name="model"/> with the golden case's spec and uploads its weights.</summary>
    private async Task<ModelDescription> Deploy(string model, GoldenCase golden)
    {
        await _cluster.Client.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create(model, golden.Spec);
        return await WeightUpload.UploadAsync(_cluster.Client, model, golden.Bytes, golden.Layout, golden.Prefix);
    }

    [Fact]
    public async Task Golden_case_with_heads_on_both_silos_matches_libtorch()
    {
        var golden = GoldenCase.Load("gpt2-small-shape");
        var grains = _cluster.Client;
        var model = await Deploy("two-silo", golden);

        // 12 heads over 2 silos: the spread placement gives each silo 6.
        var silos = _cluster.Silos.Select(s => s.SiloAddress.Endpoint.ToString()).ToHashSet();
        Assert.Equal(12, model.Heads.Length);
        var perSilo = model.Heads.GroupBy(h => h.Silo).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(silos, perSilo.Keys.ToHashSet());
        Assert.All(perSilo.Values, count => Assert.Equal(6, count));

        foreach (var expectation in golden.Expectations())
        {
            var result = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("two-silo", expectation.Layer)).Forward(new ForwardCommand
            {
                Batch = golden.Batch,
                Tokens = golden.Tokens,
                ModelDim = golden.Spec.ModelDim,
                Input = FloatBytes.ToBytes(golden.Input),
                Causal = expectation.Causal,
                Lengths = expectation.Padded ? golden.Lengths : [],
            });
            Tolerance.AssertClose(golden.Expected(expectation.Tensor), FloatBytes.AsFloats(result.Output), expectation.Tensor);
            Assert.Equal(silos, result.Heads.Select(h => h.Silo).ToHashSet());
        }
    }

    [Fact]
    public async Task A_layer_sends_W_O_only_to_a_caller_without_a_copy_of_its_versions()
    {
        var golden = GoldenCase.Load("gpt2-small-shape");
        var grains = _cluster.Client;
        await Deploy("held", golden);
        var layer = grains.GetGrain<ILayerGrain>(GrainKeys.Layer("held", 0));

        var full = await layer.GetProjection();
        Assert.False(full.OutputWeightsHeld);
        Assert.Equal(golden.Spec.HeadCount * golden.Spec.HeadDim * golden.Spec.ModelDim * sizeof(float), full.OutputWeights.Length);

        var held = await layer.GetProjectionUnlessHeld([.. full.HeadVersions]);
        Assert.True(held.OutputWeightsHeld);
        Assert.Empty(held.OutputWeights);
        Assert.Equal(full.HeadVersions, held.HeadVersions);
        Assert.Equal(full.OutputBias, held.OutputBias);

        // Another version held (one group differs) gets W_O whole.
        var other = full.HeadVersions.ToArray();
        other[^1] = Guid.NewGuid();
        Assert.Equal(full.OutputWeights, (await layer.GetProjectionUnlessHeld(other)).OutputWeights);

        // After a new upload the old versions are stale: W_O comes whole, with the new versions.
        await WeightUpload.UploadAsync(grains, "held", golden.Bytes, golden.Layout, golden.Prefix);
        var reuploaded = await layer.GetProjectionUnlessHeld(full.HeadVersions);
        Assert.False(reuploaded.OutputWeightsHeld);
        Assert.Equal(full.OutputWeights, reuploaded.OutputWeights);
        Assert.NotEqual(full.HeadVersions, reuploaded.HeadVersions);
    }

    [Fact]
    public async Task Sessions_on_one_silo_fetch_W_O_once_and_answer_alike()
    {
        var golden = GoldenCase.Load("gpt2-small-shape");
        var grains = _cluster.Client;
        await Deploy("shared-wo", golden);
        var causal = golden.Expectations().First(e => e.Layer == 0 && e.Causal && !e.Padded && !e.Windowed);
        while (ProjectionCalls.Seen.TryDequeue(out _)) { }

        // Three sessions on two silos: at least two share a silo, and so one W_O copy.
        var answers = new List<float[]>();
        for (int i = 0; i < 3; i++)
        {
            var session = grains.GetGrain<IDecodeSessionGrain>($"shared-wo-{i}");
            await session.Open("shared-wo", 0, 0);
            var result = await session.Decode(new DecodeCommand
            {
                Batch = golden.Batch, Tokens = golden.Tokens, ModelDim = golden.Spec.ModelDim, Input = FloatBytes.ToBytes(golden.Input),
            });
            answers.Add(FloatBytes.ToFloats(result.Output));
        }

        var calls = ProjectionCalls.Seen.ToList();
        Assert.Equal(3, calls.Count);
        foreach (var silo in calls.GroupBy(c => c.Silo))
        {
            // The silo's first session fetches W_O whole; the next ones name the versions it holds and get none.
            Assert.Equal(("GetProjection", true), (silo.First().Method, silo.First().WithOutputWeights));
            Assert.All(silo.Skip(1), c => Assert.Equal(("GetProjectionUnlessHeld", false), (c.Method, c.WithOutputWeights)));
        }
        Assert.Contains(calls, c => c.Method == "GetProjectionUnlessHeld");
        // A prefill of every token is the causal pass: each session against libtorch, and all three bit for bit alike.
        foreach (var answer in answers)
        {
            Tolerance.AssertClose(golden.Expected(causal.Tensor), answer, causal.Tensor);
            Assert.Equal(answers[0], answer);
        }
    }

    [Fact]
    public void Every_silo_copies_stored_bytes_with_the_flat_copier()
    {
        // The memory storage's grain calls deep-copy each state as a ReadOnlyMemory<byte> (FlatReadOnlyMemoryCopier).
        foreach (var silo in _cluster.Silos.Cast<InProcessSiloHandle>())
            Assert.IsType<FlatReadOnlyMemoryCopier<byte>>(
                silo.SiloHost.Services.GetRequiredService<IDeepCopierProvider>().GetDeepCopier<ReadOnlyMemory<byte>>());
    }

    [Fact]
    public async Task Heads_come_back_from_storage_after_their_silo_restarts()
    {
        var golden = GoldenCase.Load("gpt2-tiny");
        var grains = _cluster.Client;
        await Deploy("restart", golden);

        // Deactivate every idle grain: the next forward re-activates heads and the coordinator from grain storage.
        var management = grains.GetGrain<IManagementGrain>(0);
        Assert.Equal(2 * 4, await HeadActivations(management));
        await management.ForceActivationCollection(TimeSpan.Zero);
        Assert.Equal(0, await HeadActivations(management));

        var result = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("restart", 1)).Forward(new ForwardCommand
        {
            Batch = golden.Batch,
            Tokens = golden.Tokens,
            ModelDim = golden.Spec.ModelDim,
            Input = FloatBytes.ToBytes(golden.Input),
            Causal = true,
            Lengths = golden.Lengths,
        });
        Tolerance.AssertClose(golden.Expected("expected.1.causal_padded"), FloatBytes.AsFloats(result.Output), "after re-activation");
    }

    [Fact]
    public async Task Bf16_on_the_wire_halves_the_bytes_and_stays_within_bfloat16_precision_on_every_golden_case()
    {
        var grains = _cluster.Client;
        foreach (var name in GoldenCase.Names)
        {
            var golden = GoldenCase.Load(name);
            string model = "bf16-" + name;
            await Deploy(model, golden);
            ForwardCommand Command(bool bf16) => new()
            {
                Batch = golden.Batch,
                Tokens = golden.Tokens,
                ModelDim = golden.Spec.ModelDim,
                Input = FloatBytes.ToBytes(golden.Input),
                Causal = true,
                Bf16Wire = bf16,
            };
            var layer = grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(model, 0));
            var exact = await layer.Forward(Command(bf16: false));
            var halved = await layer.Forward(Command(bf16: true));

            var expected = golden.Expected("expected.0.causal");
            Tolerance.AssertClose(expected, FloatBytes.AsFloats(exact.Output), name + " f32 wire");
            // bfloat16 keeps 8 significant bits: X and Z each round by at most 2^-9 relative.
            Tolerance.AssertClose(expected, FloatBytes.AsFloats(halved.Output), name + " bf16 wire", maxAbs: 5e-3, relativeFrobenius: 5e-3);
            var (maxAbs, relative) = Errors(expected, FloatBytes.AsFloats(halved.Output));
            Assert.True(relative > 1e-6, $"{name}: bf16 changed nothing; was it on the wire?");
            output.WriteLine($"| {name} | {maxAbs:E1} | {relative:E1} |");

            var remoteExact = exact.Silos.Single(s => s.BytesSent > 0);
            var remoteHalved = halved.Silos.Single(s => s.BytesSent > 0);
            Assert.Equal(remoteExact.BytesSent / 2, remoteHalved.BytesSent);
            // Back comes one partial sum [rows × D] per silo, or its groups' Z [rows × groups·g·dh]: 4 bytes a value, 2 in bf16.
            long rows = golden.Batch * golden.Tokens;
            long Values(ForwardResult result, SiloTraffic silo) => result.OutputProjection == OutputProjectionMode.PartialSums
                ? rows * golden.Spec.ModelDim
                : rows * silo.Groups * golden.Spec.GroupSize * golden.Spec.HeadDim;
            Assert.Equal(Values(exact, remoteExact) * 4, remoteExact.BytesReceived);
            Assert.Equal(Values(halved, remoteHalved) * 2, remoteHalved.BytesReceived);
        }
    }

    private static (double MaxAbs, double Relative) Errors(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        double worst = 0, difference = 0, reference = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs((double)actual[i] - expected[i]);
            worst = Math.Max(worst, d);
            difference += d * d;
            reference += (double)expected[i] * expected[i];
        }
        return (worst, Math.Sqrt(difference / reference));
    }

    private static async Task<int> HeadActivations(IManagementGrain management) =>
        (await management.GetSimpleGrainStatistics())
            .Where(s => s.GrainType.Contains(nameof(HeadGrain), StringComparison.Ordinal))
            .Sum(s => s.ActivationCount);
}
