using System.Diagnostics.Metrics;
using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;
using Headwise.Kernels;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests;

/// <summary>
/// A caller that gives up (deadline, cancellation) cancels the head work: the heads stop at their next sequence
/// and report nothing. Counted from the head compute histogram, which a head records only when it finished. The kernel
/// holds the heads' sequences from the moment the caller gives up until the silo has heard it: the test once gave up
/// when the first head finished, and on CI's loaded 2-core machine (2026-11-30) all 16 heads finished before the
/// cancellation reached the silo, although nothing was wrong with it.
/// </summary>
public sealed class ForwardCancellationTests : IAsyncLifetime
{
    private const int Heads = 16, ModelDim = 1024, Batch = 24, Tokens = 512;
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage(StorageNames.Weights);
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 100);
            silo.Services.AddSingleton<IHeadKernel>(services => new HeldUntilHeard(services.GetRequiredService<Headwise.Grains.Forward.CancelledForwards>()));
        }
    }

    // The SIMD kernel; while armed, a sequence's Attend first says it started, then waits (at most 30 s) until the silo
    // has a pass called off.
    private sealed class HeldUntilHeard(Headwise.Grains.Forward.CancelledForwards cancelled) : DelegatingKernel
    {
        public static volatile TaskCompletionSource? Started;

        public override void Attend(ReadOnlySpan<float> input, int batch, int tokens, ReadOnlySpan<int> lengths, HeadGroupWeights weights,
            AttentionOptions options, Span<float> output, Span<float> attention)
        {
            if (Started is { } started)
            {
                started.TrySetResult();
                SpinWait.SpinUntil(() => cancelled.Count > 0, TimeSpan.FromSeconds(30));
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
        var spec = new AttentionSpec { ModelDim = ModelDim, HeadCount = Heads }.Resolve();
        await _cluster.Client.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create("cancel", spec);
        await WeightUpload.StoreAsync(_cluster.Client, "cancel", SeededWeights.Create(spec, seed: 5));
    }

    public async Task DisposeAsync() => await _cluster.StopAllSilosAsync();

    [Fact]
    public async Task Heads_stop_their_work_when_the_caller_gives_up()
    {
        var layer = _cluster.Client.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("cancel", 0));
        var command = Command();
        await layer.Forward(command); // warm: every head active, kernels compiled

        int completed = await CountHeadKernels(async () => Assert.NotNull(await layer.Forward(command)));
        Assert.Equal(Heads, completed);

        // Give up once the first heads have started; every head has sequences to go then.
        using var cancellation = new CancellationTokenSource();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        HeldUntilHeard.Started = started;
        int ranAfterCancel;
        try
        {
            ranAfterCancel = await CountHeadKernels(async () =>
            {
                var call = layer.Forward(command, cancellation.Token);
                await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
                cancellation.Cancel();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
            });
        }
        finally
        {
            HeldUntilHeard.Started = null;
        }
        Assert.True(ranAfterCancel == 0, $"{ranAfterCancel} of {Heads} heads finished their work although the caller gave up early.");

        // The layer still answers afterwards.
        Assert.Equal(Batch * Tokens * ModelDim * sizeof(float), (await layer.Forward(command)).Output.Length);
    }

    private static ForwardCommand Command()
    {
        var random = new Random(3);
        var input = new float[Batch * Tokens * ModelDim];
        for (int i = 0; i < input.Length; i++) input[i] = (float)(random.NextDouble() - 0.5);
        return new ForwardCommand { Batch = Batch, Tokens = Tokens, ModelDim = ModelDim, Input = FloatBytes.ToBytes(input) };
    }

    // Runs the call, waits until the heads it reached have settled, and counts the head kernels that ran.
    private static async Task<int> CountHeadKernels(Func<Task> call)
    {
        int count = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == HeadwiseTelemetry.Name && instrument.Name == "headwise.head.compute.duration") l.EnableMeasurementEvents(instrument);
        };
        // Other test classes run clusters in this process at the same time: count only this test's model.
        listener.SetMeasurementEventCallback<double>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == HeadwiseTelemetry.ModelAttribute && Equals(tag.Value, "cancel")) Interlocked.Increment(ref count);
        });
        listener.Start();
        await call();
        await Task.Delay(TimeSpan.FromSeconds(2));
        return Volatile.Read(ref count);
    }
}
