using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Headwise.Kernels;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests.Forward;

/// <summary>
/// Four real silos in this process with a broadcast tree of fanout 2 (the coordinator sends X to two silos, one of
/// which forwards it to the fourth), so a pass exercises the whole row-parallel path: heads on every silo, partial sums
/// of W_O per silo, added up the tree. Every answer is checked against a float64 oracle computed from the stored
/// weights (<see cref="LayerOracle"/>), with partial sums and with Z gathered at the coordinator. Inside each silo the
/// groups' partial sum is split the same way over its compute threads.
/// </summary>
public sealed class PartialSumClusterTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage(StorageNames.Weights);
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 100);
            silo.Services.Configure<ScatterOptions>(o =>
            {
                o.OutputProjection = OutputProjectionChoice.PartialSums;
                o.TreeFanout = 2;
                // Three compute threads whatever the machine: a silo's groups split over them in uneven runs (25 heads:
                // 7 → 2/2/3), each run multiplying its own rows of W_O, and one group alone in a run (16 heads: 4 → 1/1/2).
                o.ComputeThreads = 3;
                // Every pass whose X comes on the channel in pieces, whether or not X is all there when it is claimed.
                o.PiecesAlways = true;
                // These tests count relay messages and re-filled groups exactly, and no silo here is lost: a hedge (1 s by
                // default) fired because the machine stalled would add rescued groups to the counts. Hedging is tested in
                // SiloLossRescueTests.
                o.HedgeAfterMs = 30_000;
            });
        }
    }

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(4);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync() => await _cluster.StopAllSilosAsync();

    public static TheoryData<string, AttentionSpec, bool> Specs => new()
    {
        // 25 heads over 4 silos: 7/6/6/6, the uneven case.
        { "mha25", new AttentionSpec { ModelDim = 100, HeadCount = 25, Bias = true }, true },
        { "gqa-window", new AttentionSpec { ModelDim = 64, HeadCount = 8, KvHeadCount = 2, HeadDim = 16, Window = 5 }, true },
        { "rope-gqa", new AttentionSpec { ModelDim = 64, HeadCount = 8, KvHeadCount = 4, HeadDim = 16, RopeTheta = 10000, RopeDim = 16 }, true },
        { "mha-bidirectional", new AttentionSpec { ModelDim = 48, HeadCount = 6, Bias = true }, false },
        // 24 KV groups of 2 query heads: 6 per silo, runs of 2 groups per compute thread (their Z side by side), with RoPE
        // and a window.
        { "gqa-rope-window-runs", new AttentionSpec { ModelDim = 64, HeadCount = 48, KvHeadCount = 24, HeadDim = 8, RopeTheta = 10000, RopeDim = 8, Window = 6 }, true },
    };

    [Theory]
    [MemberData(nameof(Specs))]
    public async Task Partial_sums_and_gathered_Z_both_match_the_float64_oracle(string name, AttentionSpec spec, bool causal)
    {
        var grains = _cluster.Client;
        (spec, var weights, var model) = await Stored(name, spec with { LayerCount = 1 }, seed: 11);
        if (spec.GroupCount >= 4)
            Assert.Equal(4, model.Heads.Select(h => h.Silo).Distinct().Count());

        const int batch = 2, tokens = 13;
        var random = new Random(name.Length);
        var x = Enumerable.Range(0, batch * tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        int[] lengths = [tokens, 9];
        var (expectedY, expectedZ) = LayerOracle.Forward(spec, weights[0], x, batch, tokens, causal, lengths);
        var coordinator = grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(name, 0));
        ForwardCommand Command(bool headOutputs) => new()
        {
            Batch = batch,
            Tokens = tokens,
            ModelDim = spec.ModelDim,
            Input = FloatBytes.ToBytes(x),
            Causal = causal,
            Lengths = lengths,
            ReturnHeadOutputs = headOutputs,
        };

        var partial = await coordinator.Forward(Command(headOutputs: false));
        Assert.Equal(OutputProjectionMode.PartialSums, partial.OutputProjection);
        Tolerance.AssertClose(Floats(expectedY), FloatBytes.AsFloats(partial.Output), name + " partial sums");
        Assert.Equal(spec.GroupCount, partial.Heads.Length);
        Assert.Equal(spec.GroupCount, partial.Silos.Sum(s => s.Groups));

        var gathered = await coordinator.Forward(Command(headOutputs: true));
        Assert.Equal(OutputProjectionMode.Gathered, gathered.OutputProjection);
        Tolerance.AssertClose(Floats(expectedY), FloatBytes.AsFloats(gathered.Output), name + " gathered");
        Tolerance.AssertClose(Floats(expectedZ), FloatBytes.AsFloats(gathered.HeadOutputs), name + " per-head Z");
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public async Task Remote_silos_compute_in_pieces_as_X_arrives_and_the_answer_matches_the_float64_oracle(string name, AttentionSpec spec, bool causal)
    {
        // Two sequences of 200 tokens: X is 77–160 KB, so it goes on the tensor channel, and each remote silo projects it
        // in pieces as they arrive (96 rows where the tree has a relay, else 192: one to three per sequence), attends each
        // block once its keys are in, and a leaf sends its partial sum up block by block.
        // Through the relay (fanout 2) the pieces stream on as they arrive.
        var grains = _cluster.Client;
        (spec, var weights, _) = await Stored(name + "-pieces", spec with { LayerCount = 1 }, seed: 12);
        const int batch = 2, tokens = 200;
        var random = new Random(name.Length + 1);
        var x = Enumerable.Range(0, batch * tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        int[] lengths = [tokens, 150];
        var (expectedY, _) = LayerOracle.Forward(spec, weights[0], x, batch, tokens, causal, lengths);

        // The piece size the head spans report: the coordinator's choice for a tree with a relay, whatever each silo holds.
        var pieceRows = new List<object?>();
        using var spans = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == Headwise.Grains.Telemetry.HeadwiseTelemetry.Name,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) =>
                System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (a.OperationName == "headwise.head" && a.GetTagItem("headwise.model") as string == name + "-pieces"
                    && a.GetTagItem(Headwise.Grains.Telemetry.HeadwiseTelemetry.PieceRowsAttribute) is { } rows)
                    lock (pieceRows) pieceRows.Add(rows);
            },
        };
        System.Diagnostics.ActivitySource.AddActivityListener(spans);

        var result = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(name + "-pieces", 0)).Forward(new ForwardCommand
        {
            Batch = batch, Tokens = tokens, ModelDim = spec.ModelDim, Input = FloatBytes.ToBytes(x), Causal = causal, Lengths = lengths,
        });

        Tolerance.AssertClose(Floats(expectedY), FloatBytes.AsFloats(result.Output), name + " in pieces");
        var remote = result.Heads.Where(h => h.InputBytes > 0).ToList();
        var local = result.Heads.Where(h => h.InputBytes == 0).ToList();
        Assert.NotEmpty(remote);
        // At least one piece per sequence; more where a piece was computed before the rest of X was in.
        Assert.All(remote, h => Assert.InRange(h.Pieces, 2, 6));
        Assert.All(local, h => Assert.Equal(0, h.Pieces)); // the coordinator's silo has all of X at once
        // Three remote silos under fanout 2 make a relay (96-row pieces); a layer of few groups may reach only one (192).
        int expectedRows = ScatterTree.PieceRowsFor(null, ScatterTree.Depth(remote.Select(h => h.Silo).Distinct().Count(), fanout: 2));
        lock (pieceRows)
        {
            Assert.Equal(remote.Count, pieceRows.Count);
            Assert.All(pieceRows, rows => Assert.Equal(expectedRows, rows));
        }
    }

    [Fact]
    public async Task Bf16_X_in_pieces_is_widened_piece_by_piece_and_stays_within_bfloat16_precision()
    {
        // 2 × 300 tokens of D = 64 in bf16: 77 KB of X on the channel, 2–8 pieces of at least 96 rows per remote silo
        // (never across a sequence); the partial sums come back whole in bf16 (a bf16 partial is not streamed).
        var grains = _cluster.Client;
        var (spec, weights) = await SmallWideModel("bf16-pieces", seed: 6);
        const int batch = 2, tokens = 300;
        var random = new Random(21);
        var x = Enumerable.Range(0, batch * tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var (expected, _) = LayerOracle.Forward(spec, weights[0], x, batch, tokens, causal: true);

        var result = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("bf16-pieces", 0)).Forward(new ForwardCommand
        {
            Batch = batch, Tokens = tokens, ModelDim = spec.ModelDim, Input = FloatBytes.ToBytes(x), Causal = true, Bf16Wire = true,
        });

        // bfloat16 keeps 8 significant bits: X and the partial sums each round by at most 2^-9 relative, so the error is
        // bounded relative to Y's largest value, not absolutely as for the golden cases' small outputs.
        double scale = expected.Max(Math.Abs);
        Tolerance.AssertClose(Floats(expected), FloatBytes.AsFloats(result.Output), "bf16 in pieces", maxAbs: 4e-3 * scale, relativeFrobenius: 5e-3);
        Assert.All(result.Heads.Where(h => h.InputBytes > 0), h => Assert.InRange(h.Pieces, 2, 8));
    }

    [Fact]
    public async Task Every_remote_silo_receives_X_once_and_sends_back_one_partial_sum()
    {
        var spec = new AttentionSpec { ModelDim = 64, HeadCount = 16, LayerCount = 1 };
        var grains = _cluster.Client;
        (spec, var weights, _) = await Stored("traffic", spec, seed: 2);
        const int tokens = 10;
        var random = new Random(3);
        var x = Enumerable.Range(0, tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var result = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("traffic", 0)).Forward(new ForwardCommand
        {
            Batch = 1, Tokens = tokens, ModelDim = spec.ModelDim, Input = FloatBytes.ToBytes(x),
        });
        // 16 heads on 4 silos: 4 each; the coordinator's silo receives nothing over the network.
        Assert.Equal(4, result.Silos.Length);
        Assert.All(result.Silos, s => Assert.Equal(4, s.Groups));
        var remote = result.Silos.Where(s => s.BytesSent > 0).ToList();
        Assert.Equal(3, remote.Count);
        Assert.All(remote, s => Assert.Equal(tokens * spec.ModelDim * sizeof(float), s.BytesSent));
        // A relay's answer is its partial sum with its subtree's added in: [T × D], never its heads' Z.
        Assert.All(remote, s => Assert.Equal(tokens * spec.ModelDim * sizeof(float), s.BytesReceived));
        // Each silo's 4 groups ran as runs of 1, 1 and 2 on its three compute threads.
        var (expected, _) = LayerOracle.Forward(spec, weights[0], x, 1, tokens, causal: false);
        Tolerance.AssertClose(Floats(expected), FloatBytes.AsFloats(result.Output), "16 heads, runs of 1/1/2 per silo");
    }

    // The model created with `spec` and seeded weights stored: its spec as the catalog completed it, the weights, where
    // its heads went.
    private async Task<(AttentionSpec Spec, LayerWeights[] Weights, ModelDescription Model)> Stored(string name, AttentionSpec spec, int seed)
    {
        spec = (await _cluster.Client.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create(name, spec)).Spec;
        var weights = SeededWeights.Create(spec, seed: seed, std: 0.2f);
        return (spec, weights, await WeightUpload.StoreAsync(_cluster.Client, name, weights));
    }

    // D = 64, 8 heads with biases: at T = 320, X and each partial sum are 80 KB, past TensorChannel.MinimumBytes.
    private async Task<(AttentionSpec Spec, LayerWeights[] Weights)> SmallWideModel(string name, int seed)
    {
        var (spec, weights, _) = await Stored(name, new AttentionSpec { ModelDim = 64, HeadCount = 8, LayerCount = 1, Bias = true }, seed);
        return (spec, weights);
    }

    [Fact]
    public async Task Passes_at_once_and_in_a_row_reuse_pooled_buffers_and_each_matches_its_own_oracle()
    {
        // X and the partial sums are 80 KB (pooled, TensorBuffers) and W_O's 256 rows split over the compute threads.
        // Four different inputs at once, twice: a buffer returned too early, or handed to two passes, mixes their answers.
        var grains = _cluster.Client;
        var (spec, weights) = await SmallWideModel("reuse", seed: 5);
        const int tokens = 320;
        var pools = _cluster.Silos.Cast<InProcessSiloHandle>().Select(s => s.SiloHost.Services.GetRequiredService<TensorBuffers>()).ToArray();
        for (int round = 0; round < 2; round++)
        {
            var inputs = Enumerable.Range(0, 4).Select(i =>
            {
                var random = new Random(100 * round + i);
                return Enumerable.Range(0, tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            }).ToArray();
            var results = await Task.WhenAll(inputs.Select(x => grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("reuse", 0)).Forward(
                new ForwardCommand { Batch = 1, Tokens = tokens, ModelDim = spec.ModelDim, Input = FloatBytes.ToBytes(x), Causal = true })));
            for (int i = 0; i < inputs.Length; i++)
            {
                var (expected, _) = LayerOracle.Forward(spec, weights[0], inputs[i], 1, tokens, causal: true);
                Tolerance.AssertClose(Floats(expected), FloatBytes.AsFloats(results[i].Output), $"round {round}, pass {i}");
            }
        }
        Assert.Contains(pools, p => p.KeptBytes > 0); // the passes gave buffers back
    }

    [Fact]
    public async Task Large_X_and_partial_sums_travel_on_the_tensor_channel_and_the_answer_matches_the_oracle()
    {
        // X [1 × 320 × 64] and each partial sum are 80 KB, past TensorChannel.MinimumBytes: both leave the Orleans messages.
        var grains = _cluster.Client;
        var (spec, weights) = await SmallWideModel("channel", seed: 4);
        const int tokens = 320;
        var random = new Random(9);
        var x = Enumerable.Range(0, tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var channels = _cluster.Silos.Cast<InProcessSiloHandle>().Select(s => s.SiloHost.Services.GetRequiredService<TensorChannel>()).ToArray();
        long framesBefore = channels.Sum(c => c.FramesReceived), bytesBefore = channels.Sum(c => c.BytesReceived);

        var result = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("channel", 0)).Forward(new ForwardCommand
        {
            Batch = 1, Tokens = tokens, ModelDim = spec.ModelDim, Input = FloatBytes.ToBytes(x), Causal = true,
        });

        var (expected, _) = LayerOracle.Forward(spec, weights[0], x, 1, tokens, causal: true);
        Tolerance.AssertClose(Floats(expected), FloatBytes.AsFloats(result.Output), "tensor channel");
        // 3 remote silos in a tree of fanout 2: X to each of them, and a partial sum back from each: 6 frames of 80 KB.
        Assert.Equal(6, channels.Sum(c => c.FramesReceived) - framesBefore);
        Assert.Equal(6L * tokens * spec.ModelDim * sizeof(float), channels.Sum(c => c.BytesReceived) - bytesBefore);
    }

    [Fact]
    public async Task Decode_steps_through_the_tree_match_the_causal_float64_oracle()
    {
        // GQA with RoPE on 4 silos, fanout 2: every step's new rows go down the tree and partial sums come back up it.
        var spec = new AttentionSpec { ModelDim = 64, HeadCount = 8, KvHeadCount = 4, HeadDim = 16, RopeTheta = 10000, RopeDim = 16, LayerCount = 1 };
        var grains = _cluster.Client;
        (spec, var weights, _) = await Stored("tree-decode", spec, seed: 21);
        const int tokens = 11;
        var random = new Random(5);
        var x = Enumerable.Range(0, tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

        var session = grains.GetGrain<IDecodeSessionGrain>(SessionIds.New());
        await session.Open("tree-decode", 0, tokens);
        var (y, steps) = await DecodeInSteps(session, spec.ModelDim, x, [4, 1, 1, 3, 2]);
        await session.Close();

        var (expected, _) = LayerOracle.Forward(spec, weights[0], x, 1, tokens, causal: true);
        Tolerance.AssertClose(Floats(expected), y, "decode through the tree");
        // One relay message per other silo (2 from the coordinator to its children, 1 from a child to the silo below it),
        // not one per remote head.
        Assert.Equal(3, steps[^1].RemoteMessages);
        Assert.All(steps, s => Assert.Equal(0, s.ReprefilledGroups));
    }

    [Fact]
    public async Task Decode_steps_of_many_rows_split_over_the_compute_threads_and_caches_dropped_on_a_silo_are_refilled_exactly()
    {
        // 24 KV groups, 6 per silo: a step of more than a few rows runs on the compute threads in runs of 2 groups. Then caches
        // are dropped: a silo's first run (both groups), the first group of two others, all 6 groups of the last. Those groups
        // answer without Z (a run with one such group has a block of zeros, a run with two adds nothing, a silo with none
        // sends no partial) and the session re-fills them.
        var spec = new AttentionSpec { ModelDim = 64, HeadCount = 48, KvHeadCount = 24, HeadDim = 8, RopeTheta = 10000, RopeDim = 8, LayerCount = 1 };
        var grains = _cluster.Client;
        (spec, var weights, var model) = await Stored("runs-decode", spec, seed: 23);
        var bySilo = model.Heads.GroupBy(h => h.Silo).Select(g => g.Select(h => h.Group).Order().ToArray()).ToArray();
        Assert.Equal(4, bySilo.Length);
        const int tokens = 45;
        var random = new Random(6);
        var x = Enumerable.Range(0, tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

        string id = SessionIds.New();
        var session = grains.GetGrain<IDecodeSessionGrain>(id);
        await session.Open("runs-decode", 0, tokens);
        var (y, steps) = await DecodeInSteps(session, spec.ModelDim, x, [24, 20, 1], position =>
        {
            if (position != 24) return;
            var dropped = bySilo.Select(groups => groups[0]).Append(bySilo[0][1]).Concat(bySilo[^1]).Distinct();
            foreach (var silo in _cluster.Silos.Cast<InProcessSiloHandle>())
                foreach (int group in dropped)
                    silo.SiloHost.Services.GetRequiredService<Headwise.Grains.Decode.SessionCaches>().Drop(GrainKeys.Head("runs-decode", 0, group), id);
        });
        await session.Close();

        var (expected, _) = LayerOracle.Forward(spec, weights[0], x, 1, tokens, causal: true);
        Tolerance.AssertClose(Floats(expected), y, "decode in runs, one silo re-filled");
        Assert.Equal([0, 2 + 1 + 1 + 6, 0], steps.Select(s => s.ReprefilledGroups));
    }

    // X fed to the session in steps of `counts` tokens (`beforeStep` gets each step's position first): Y of every token,
    // and each step's result.
    private static async Task<(float[] Y, List<DecodeResult> Steps)> DecodeInSteps(IDecodeSessionGrain session, int modelDim, float[] x,
        int[] counts, Action<int>? beforeStep = null)
    {
        var y = new float[x.Length];
        int position = 0;
        var steps = new List<DecodeResult>();
        foreach (int count in counts)
        {
            beforeStep?.Invoke(position);
            var step = await session.Decode(new DecodeCommand
            {
                Batch = 1, Tokens = count, ModelDim = modelDim,
                Input = FloatBytes.ToBytes(x.AsSpan(position * modelDim, count * modelDim)),
            });
            FloatBytes.AsFloats(step.Output).CopyTo(y.AsSpan(position * modelDim));
            position += count;
            steps.Add(step);
        }
        return (y, steps);
    }

    [Fact]
    public async Task A_head_moved_under_a_cached_plan_is_found_where_it_went_and_the_answer_stays_exact()
    {
        var spec = new AttentionSpec { ModelDim = 64, HeadCount = 8, LayerCount = 1 };
        var grains = _cluster.Client;
        (spec, var weights, _) = await Stored("moved", spec, seed: 8);
        const int tokens = 9;
        var x = Enumerable.Range(0, tokens * spec.ModelDim).Select(i => MathF.Sin(i * 0.37f)).ToArray();
        var command = new ForwardCommand { Batch = 1, Tokens = tokens, ModelDim = spec.ModelDim, Input = FloatBytes.ToBytes(x) };
        var coordinator = grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("moved", 0));
        var before = await coordinator.Forward(command); // the coordinator's silo now holds a plan naming each head's silo

        // Move group 3 to another silo behind the plan's back (a placement hint and Orleans' migration).
        string from = before.Heads[3].Silo;
        var target = _cluster.Silos.Select(s => s.SiloAddress).First(a => a.Endpoint.ToString() != from);
        RequestContext.Set(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey, target);
        await grains.GetGrain<IHeadGrain>(GrainKeys.Head("moved", 0, 3)).Cast<Orleans.Core.Internal.IGrainManagementExtension>().MigrateOnIdle();
        RequestContext.Clear();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((await grains.GetGrain<IHeadGrain>(GrainKeys.Head("moved", 0, 3)).GetSilo()) == from && DateTime.UtcNow < deadline)
            await Task.Delay(100);

        var after = await coordinator.Forward(command);
        Assert.Equal(target.Endpoint.ToString(), after.Heads[3].Silo);
        var (expected, _) = LayerOracle.Forward(spec, weights[0], x, 1, tokens, causal: false);
        Tolerance.AssertClose(Floats(expected), FloatBytes.AsFloats(before.Output), "before the move");
        Tolerance.AssertClose(Floats(expected), FloatBytes.AsFloats(after.Output), "after the move");
    }

    [Fact]
    public async Task A_model_deleted_and_created_again_with_another_shape_is_planned_afresh()
    {
        var grains = _cluster.Client;
        var catalog = grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog);
        var coordinator = grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("reshaped", 0));
        async Task<(AttentionSpec Spec, LayerWeights[] Weights)> Create(AttentionSpec spec, int seed)
        {
            var (created, weights, _) = await Stored("reshaped", spec with { LayerCount = 1 }, seed);
            return (created, weights);
        }
        ForwardCommand Command(int modelDim, float[] x) => new() { Batch = 1, Tokens = 5, ModelDim = modelDim, Input = FloatBytes.ToBytes(x) };

        var (first, _) = await Create(new AttentionSpec { ModelDim = 32, HeadCount = 8 }, seed: 1);
        await coordinator.Forward(Command(first.ModelDim, new float[5 * first.ModelDim])); // the plan is cached now
        await catalog.Delete("reshaped");
        var (second, weights) = await Create(new AttentionSpec { ModelDim = 48, HeadCount = 4 }, seed: 2);

        var x = Enumerable.Range(0, 5 * second.ModelDim).Select(i => MathF.Cos(i * 0.3f)).ToArray();
        var result = await coordinator.Forward(Command(second.ModelDim, x));
        var (expected, _) = LayerOracle.Forward(second, weights[0], x, 1, 5, causal: false);
        Tolerance.AssertClose(Floats(expected), FloatBytes.AsFloats(result.Output), "the new model");
        Assert.Equal(second.GroupCount, result.Heads.Length);
    }

    private static float[] Floats(double[] values) => values.Select(v => (float)v).ToArray();
}
