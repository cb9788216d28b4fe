using System.Diagnostics.Metrics;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Forward;
using Headwise.Grains.Telemetry;
using Headwise.Kernels;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests;

/// <summary>
/// Many sessions decoding one token per step at once on one silo (GQA, a window of 5: linear-gqa-window), with
/// cross-session batching on: batches of more than one step form (the silo's <see cref="StepBatcher.Stats"/> and the
/// headwise.decode.batch.size histogram say so), and every session's outputs equal the same session decoded alone with
/// batching off (max abs difference ≤ 1e-5 × the session's largest |y|) and, for the sessions fed the golden input,
/// libtorch's float64 reference (the golden bounds). No session sees another's tokens: two sessions with the same
/// history and different last tokens answer differently, each as alone; a session whose caches are dropped between
/// its steps re-fills them while its batch-mates go on.
/// </summary>
[Collection(DecodeClusterCollection.Name)]
public sealed class DecodeBatchingClusterTests : IAsyncLifetime
{
    private const int Sessions = 24;
    private const double SoloBound = 1e-5;
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage(StorageNames.Weights);
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            silo.Services.AddSingleton<IHeadKernel>(services =>
                new FirstProjectionHeld(() => services.GetRequiredService<StepBatcher>().Waiting("batching/0") >= 2));
        }
    }

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync() => await _cluster.StopAllSilosAsync();

    private T Service<T>() where T : notnull =>
        ((InProcessSiloHandle)_cluster.Primary!).SiloHost.Services.GetRequiredService<T>();

    [Fact]
    public async Task Concurrent_sessions_batch_and_each_answers_as_it_would_alone()
    {
        var golden = GoldenCase.Load("linear-gqa-window");
        var grains = _cluster.Client;
        await grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create("batching", golden.Spec with { Window = golden.Window });
        await WeightUpload.UploadAsync(grains, "batching", golden.Bytes, golden.Layout, golden.Prefix);
        int tokens = golden.Tokens, modelDim = golden.Spec.ModelDim;

        // Sessions 0 and 1: the golden sequences. 2 and 3: golden sequence 0 with different last tokens. The rest random.
        var inputs = new float[Sessions][];
        for (int s = 0; s < Sessions; s++)
        {
            var random = RandomTensors(s, tokens * modelDim);
            inputs[s] = s switch
            {
                0 or 1 => golden.Input.AsSpan(s * tokens * modelDim, tokens * modelDim).ToArray(),
                2 or 3 => golden.Input.AsSpan(0, (tokens - 1) * modelDim).ToArray().Concat(random.AsSpan((tokens - 1) * modelDim).ToArray()).ToArray(),
                _ => random,
            };
        }

        var options = Service<IOptions<DecodeBatchOptions>>().Value;
        var stats = Service<StepBatcher>().Stats;
        var caches = Service<SessionCaches>();
        var sizes = new List<int>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == HeadwiseTelemetry.Name && instrument.Name == "headwise.decode.batch.size") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<int>((_, value, _, _) => { lock (sizes) sizes.Add(value); });
        listener.Start();
        var spans = new List<(object? Size, object? QueueMs)>();
        var parts = new List<(object? HeadsMs, object? CommitMs, double SpanMs)>();
        using var activities = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == HeadwiseTelemetry.Name,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) =>
                System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (a.OperationName == "headwise.decode" && a.GetTagItem("headwise.model") as string == "batching")
                    lock (spans)
                    {
                        spans.Add((a.GetTagItem(HeadwiseTelemetry.BatchSizeAttribute), a.GetTagItem(HeadwiseTelemetry.BatchQueueAttribute)));
                        parts.Add((a.GetTagItem(HeadwiseTelemetry.HeadsMsAttribute), a.GetTagItem(HeadwiseTelemetry.CommitMsAttribute), a.Duration.TotalMilliseconds));
                    }
            },
        };
        System.Diagnostics.ActivitySource.AddActivityListener(activities);

        Assert.True(options.DecodeBatching);
        const int dropped = 5, droppedAt = 9;
        var batched = await Task.WhenAll(Enumerable.Range(0, Sessions).Select(s => Task.Run(() =>
            Decode(grains, inputs[s], tokens, modelDim, beforeStep: s == dropped ? (id, step) =>
            {
                if (step == droppedAt) caches.DropSession(id);
            } : null))));
        listener.Dispose();

        var layer = Assert.Single(stats.Snapshot(), v => v.Layer == "batching/0");
        Assert.True(layer.LargestSize > 1, $"no batch of more than one step formed: {layer}");
        Assert.True(layer.Steps > layer.Batches, $"{layer}");
        Assert.Equal(Sessions * tokens, layer.Steps);
        lock (sizes) Assert.Contains(sizes, size => size > 1);
        // Every step's span tells the batch it ran in and how long it waited for it.
        lock (spans)
        {
            Assert.Equal(Sessions * tokens, spans.Count);
            Assert.All(spans, s => Assert.True(s.Size is int size && size >= 1 && s.QueueMs is double ms && ms >= 0, $"{s}"));
            Assert.Contains(spans, s => s.Size is int size && size > 1);
            // And how long its heads and its commit took: both inside the span, neither zero (every step computes and
            // writes its record).
            Assert.All(parts, p => Assert.True(p.HeadsMs is double heads && heads > 0 && p.CommitMs is double commit && commit > 0
                && heads + commit <= p.SpanMs + 0.002, $"{p}"));
        }

        // The dropped session re-filled its groups on the step after the drop, and only then; the others never did.
        var refills = batched.Select(b => b.Steps.Select(r => r.ReprefilledGroups).ToArray()).ToArray();
        Assert.True(refills[dropped][droppedAt] > 0);
        Assert.Equal(refills[dropped][droppedAt], refills[dropped].Sum());
        for (int s = 0; s < Sessions; s++)
            if (s != dropped) Assert.True(refills[s].All(r => r == 0), $"session {s} re-filled without a dropped cache");

        options.DecodeBatching = false;
        try
        {
            int batchesBefore = (int)stats.Snapshot().Single(v => v.Layer == "batching/0").Batches;
            for (int s = 0; s < Sessions; s++)
            {
                var (alone, _) = await Decode(grains, inputs[s], tokens, modelDim, beforeStep: null);
                float largest = alone.Max(MathF.Abs);
                for (int i = 0; i < alone.Length; i++)
                    Assert.True(Math.Abs(batched[s].Output[i] - alone[i]) <= SoloBound * largest,
                        $"session {s}: y[{i / modelDim}, {i % modelDim}] batched {batched[s].Output[i]}, alone {alone[i]}");
            }
            var after = stats.Snapshot().Single(v => v.Layer == "batching/0");
            Assert.Equal(batchesBefore + Sessions * tokens, after.Batches); // batching off: one pass per step
            Assert.Equal(1, after.LastSize);
        }
        finally
        {
            options.DecodeBatching = true;
        }

        var reference = golden.Expected("expected.0.causal_window");
        for (int s = 0; s < 2; s++)
            Tolerance.AssertClose(reference.AsSpan(s * tokens * modelDim, tokens * modelDim), batched[s].Output, $"session {s} against float64");
        for (int s = 2; s < 4; s++)
            Tolerance.AssertClose(reference.AsSpan(0, (tokens - 1) * modelDim), batched[s].Output.AsSpan(0, (tokens - 1) * modelDim),
                $"session {s}'s shared history against float64");
        // Same history, different last tokens: different answers at the last position (each equal to its own solo run above).
        var last2 = batched[2].Output.AsSpan((tokens - 1) * modelDim);
        var last3 = batched[3].Output.AsSpan((tokens - 1) * modelDim);
        double apart = 0;
        for (int i = 0; i < modelDim; i++) apart = Math.Max(apart, Math.Abs(last2[i] - last3[i]));
        Assert.True(apart > 1e-2, $"sessions 2 and 3 answered their different last tokens {apart} apart");
    }

    // One session decoding its input one token per step; Y of every step and the steps' answers.
    private static async Task<(float[] Output, List<DecodeResult> Steps)> Decode(IGrainFactory grains, float[] input, int tokens, int modelDim,
        Action<string, int>? beforeStep)
    {
        string id = SessionIds.New();
        var session = grains.GetGrain<IDecodeSessionGrain>(id);
        await session.Open("batching", 0, tokens);
        var output = new float[tokens * modelDim];
        var steps = new List<DecodeResult>();
        for (int t = 0; t < tokens; t++)
        {
            beforeStep?.Invoke(id, t);
            var result = await session.Decode(new DecodeCommand
            {
                Batch = 1, Tokens = 1, ModelDim = modelDim, Input = FloatBytes.ToBytes(input.AsSpan(t * modelDim, modelDim).ToArray()),
            });
            FloatBytes.AsFloats(result.Output).CopyTo(output.AsSpan(t * modelDim));
            steps.Add(result);
        }
        await session.Close();
        return (output, steps);
    }

    private static float[] RandomTensors(int seed, int count)
    {
        var random = new Random(1000 + seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }
}

/// <summary>
/// Three silos, every session's coordinator on the first (the sessions are opened through its own grain factory), the
/// heads spread over all three: the other two see the steps only through their relay grain, one activation for all
/// sessions, and batches of more than one step still form there (a relay that computed an idle layer's step in its own
/// turn kept the next steps from reaching the queue: every batch was 1). The kernel's projections take a millisecond
/// more each, as a real model's do: with this test's tiny heads a step computed in microseconds, and whether two
/// sessions' steps ever met on a silo was chance.
/// </summary>
[Collection(DecodeClusterCollection.Name)]
public sealed class DecodeBatchingRelayTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.Services.AddKeyedSingleton<Orleans.Storage.IGrainStorage>(StorageNames.Weights, (_, _) => new ProcessWideStorage());
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            // Each silo's first projection waits for two more steps queued behind it on the relay's layer: a millisecond's
            // sleep per projection, as before, let steps run one by one on a loaded machine (as the test above once did).
            silo.Services.AddSingleton<IHeadKernel>(services =>
                new FirstProjectionHeld(() => services.GetRequiredService<StepBatcher>().Waiting("relay/0") >= 2));
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

    [Fact]
    public async Task Steps_reaching_a_silo_through_its_relay_batch_too()
    {
        var golden = GoldenCase.Load("linear-mha-bias");
        var primary = ((InProcessSiloHandle)_cluster.Primary!).SiloHost.Services;
        var grains = primary.GetRequiredService<IGrainFactory>();
        await grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create("relay", golden.Spec);
        var model = await WeightUpload.UploadAsync(grains, "relay", golden.Bytes, golden.Layout, golden.Prefix);
        string primaryName = _cluster.Primary!.SiloAddress.Endpoint.ToString();
        var remote = _cluster.SecondarySilos.Cast<InProcessSiloHandle>()
            .Where(s => model.Heads.Any(h => h.Silo == s.SiloAddress.Endpoint.ToString())).ToList();
        Assert.NotEmpty(remote);

        int modelDim = golden.Spec.ModelDim;
        const int sessions = 16, steps = 10;
        var opened = Enumerable.Range(0, sessions).Select(_ => grains.GetGrain<IDecodeSessionGrain>(SessionIds.New())).ToArray();
        await Task.WhenAll(Enumerable.Range(0, sessions).Select(s => Task.Run(async () =>
        {
            var session = opened[s];
            await session.Open("relay", 0, steps);
            var random = new Random(s);
            for (int t = 0; t < steps; t++)
            {
                var x = Enumerable.Range(0, modelDim).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
                var result = await session.Decode(new DecodeCommand { Batch = 1, Tokens = 1, ModelDim = modelDim, Input = FloatBytes.ToBytes(x) });
                Assert.True(result.RemoteMessages > 0, "the step never left the coordinator's silo");
            }
        })));

        var coordinators = (await grains.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics())
            .Where(a => a.GrainType.Contains(nameof(DecodeSessionGrain), StringComparison.Ordinal))
            .Select(a => a.SiloAddress.Endpoint.ToString()).Distinct().ToList();
        Assert.Equal([primaryName], coordinators);
        await Task.WhenAll(opened.Select(s => s.Close()));
        foreach (var silo in remote)
        {
            var layer = Assert.Single(silo.SiloHost.Services.GetRequiredService<StepBatcher>().Stats.Snapshot(), v => v.Layer == "relay/0");
            Assert.Equal(sessions * steps, layer.Steps);
            Assert.True(layer.LargestSize > 1, $"silo {silo.SiloAddress}: only batches of one through the relay: {layer}");
        }
    }
}

// The SIMD kernel, whose first projection waits (at most 30 s) until two more steps queue behind it. This test's
// heads are tiny: a step computes in microseconds, and on a loaded 2-core machine 408 steps once ran without any two
// meeting (CI, 2026-11-30). Held, the steps queued behind the first one must form a batch of more than one.
internal sealed class FirstProjectionHeld(Func<bool> queued) : DelegatingKernel
{
    private int _held;

    public override void Project(ReadOnlySpan<float> input, int rows, int inner, ReadOnlySpan<float> weights, int outer,
        ReadOnlySpan<float> bias, Span<float> output)
    {
        if (Interlocked.Exchange(ref _held, 1) == 0) SpinWait.SpinUntil(queued, TimeSpan.FromSeconds(30));
        base.Project(input, rows, inner, weights, outer, bias, output);
    }
}
