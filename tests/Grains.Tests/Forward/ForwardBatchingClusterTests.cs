using System.Diagnostics;
using System.Diagnostics.Metrics;
using Headwise.Contracts;
using Headwise.Grains.Forward;
using Headwise.Grains.Telemetry;
using Headwise.Kernels;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests.Forward;

/// <summary>
/// Forwards of one layer through a real silo with forward batching on: the first forward's heads are held until three
/// more forwards queue behind it, so they run as one batch of three (the headwise.forward.batch.size histogram and their
/// spans say so). Every caller's Y matches the float64 oracle of its own input (<see cref="LayerOracle"/>, at the golden
/// bounds), with GQA, RoPE, biases, a causal mask and one caller's padding lengths: no caller's answer carries another's
/// rows or sees another's keys.
/// </summary>
public sealed class ForwardBatchingClusterTests : IAsyncLifetime
{
    private const string Model = "forward-batching";
    private static readonly string LayerKey = Model + "/0";
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage(StorageNames.Weights);
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            // One pass per lane: the held first pass makes every later forward queue (two passes are the unit tests').
            silo.Services.Configure<ForwardBatchOptions>(o =>
            {
                o.ForwardBatchPasses = 1;
                // Callers of up to 2 × 72 rows batch (by default only passes of up to 32 rows do).
                o.ForwardBatchTakesRows = 256;
            });
            silo.Services.AddSingleton<IHeadKernel>(services =>
                new FirstAttendHeld(() => services.GetRequiredService<ForwardBatcher>().Waiting(LayerKey) >= 3));
        }
    }

    // The SIMD kernel, whose first attention waits (at most 30 s) until three forwards queue behind its pass.
    private sealed class FirstAttendHeld(Func<bool> queued) : DelegatingKernel
    {
        private int _held;
        public readonly ManualResetEventSlim Entered = new();

        public override void Attend(ReadOnlySpan<float> input, int batch, int tokens, ReadOnlySpan<int> lengths, HeadGroupWeights weights,
            AttentionOptions options, Span<float> output, Span<float> attention)
        {
            if (Interlocked.Exchange(ref _held, 1) == 0)
            {
                Entered.Set();
                SpinWait.SpinUntil(queued, TimeSpan.FromSeconds(30));
            }
            base.Attend(input, batch, tokens, lengths, weights, options, output, attention);
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

    [Fact]
    public async Task Forwards_that_queue_run_as_one_batch_and_each_matches_the_oracle_of_its_own_input()
    {
        var grains = _cluster.Client;
        var spec = (await grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create(Model, new AttentionSpec
        {
            ModelDim = 64, HeadCount = 8, KvHeadCount = 2, HeadDim = 16, RopeTheta = 10000, RopeDim = 16, Bias = true, LayerCount = 1,
        })).Spec;
        var weights = SeededWeights.Create(spec, seed: 17, std: 0.2f);
        await WeightUpload.StoreAsync(grains, Model, weights);
        var kernel = (FirstAttendHeld)((InProcessSiloHandle)_cluster.Primary!).SiloHost.Services.GetRequiredService<IHeadKernel>();

        var sizes = new List<int>();
        using var meters = new MeterListener();
        meters.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == HeadwiseTelemetry.Name && instrument.Name == "headwise.forward.batch.size") l.EnableMeasurementEvents(instrument);
        };
        // Other test classes run forwards in this process at the same time: only this model's batches count.
        meters.SetMeasurementEventCallback<int>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == HeadwiseTelemetry.ModelAttribute && tag.Value as string == Model)
                    lock (sizes) sizes.Add(value);
        });
        meters.Start();
        var spanSizes = new List<object?>();
        using var spans = new ActivityListener
        {
            ShouldListenTo = source => source.Name == HeadwiseTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (a.OperationName == "headwise.forward" && a.GetTagItem("headwise.model") as string == Model)
                    lock (spanSizes) spanSizes.Add(a.GetTagItem(HeadwiseTelemetry.BatchSizeAttribute));
            },
        };
        ActivitySource.AddActivityListener(spans);

        // 72 tokens: the batch of the last three callers (4 sequences) has a Y of 73,728 bytes, big enough for the silo's
        // tensor pool, while each caller's own Y is not.
        const int tokens = 72;
        // Batch sizes 1, 2, 1, 1; the third caller pads its sequence to 6 tokens.
        var callers = new (int Batch, int[] Lengths)[] { (1, []), (2, []), (1, [6]), (1, []) };
        var inputs = callers.Select((c, i) =>
        {
            var random = new Random(40 + i);
            return Enumerable.Range(0, c.Batch * tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        }).ToArray();
        var coordinator = grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(Model, 0));
        Task<ForwardResult> Forward(int i) => coordinator.Forward(new ForwardCommand
        {
            Batch = callers[i].Batch, Tokens = tokens, ModelDim = spec.ModelDim, Input = FloatBytes.ToBytes(inputs[i]), Causal = true,
            Lengths = callers[i].Lengths,
        });

        var pool = ((InProcessSiloHandle)_cluster.Primary!).SiloHost.Services.GetRequiredService<TensorBuffers>();
        long pooledBefore = pool.KeptBytes;
        var first = Forward(0);
        Assert.True(kernel.Entered.Wait(TimeSpan.FromSeconds(30)), "the first forward's heads never started");
        var results = await Task.WhenAll(Enumerable.Range(1, 3).Select(Forward).Prepend(first));

        for (int i = 0; i < callers.Length; i++)
        {
            var (expected, _) = LayerOracle.Forward(spec, weights[0], inputs[i], callers[i].Batch, tokens, causal: true,
                callers[i].Lengths.Length > 0 ? callers[i].Lengths : null);
            Tolerance.AssertClose(expected.Select(v => (float)v).ToArray(), FloatBytes.AsFloats(results[i].Output), $"caller {i}");
        }
        lock (sizes) Assert.Equal([1, 3], sizes);
        lock (spanSizes) Assert.Equal([1, 3, 3, 3], spanSizes.Select(s => Convert.ToInt32(s)).Order().ToArray());
        // Each caller got a copy of its rows; the batch's own Y goes back to the pool just after the callers are answered.
        long expectedKept = pooledBefore + 4L * tokens * spec.ModelDim * sizeof(float);
        var waited = Stopwatch.StartNew();
        while (pool.KeptBytes != expectedKept && waited.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(10);
        Assert.Equal(expectedKept, pool.KeptBytes);
    }
}
