using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Forward;
using Headwise.Kernels;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Tests.Forward;

/// <summary>
/// <see cref="StepBatcher"/> on one layer of two GQA head groups with RoPE: a step that finds the layer idle runs at
/// once, alone; the steps that arrive while it computes (held inside the kernel by a gate, so the batch is known)
/// run as one batch. Within it each step keeps what it had alone: a bad input fails that step only, before any cache
/// changed; a step at another position than its caches answers NoCache for its groups only; a step cancelled while it
/// waited leaves the queue and its caches untouched; the others' partial sums equal the same steps run one at a time
/// (max abs difference ≤ 1e-5 × the largest |partial|).
/// </summary>
public sealed class StepBatcherTests
{
    private const string Layer = "m/0";
    private static readonly AttentionSpec Spec = new AttentionSpec { ModelDim = 32, HeadCount = 4, KvHeadCount = 2, RopeTheta = 10000 }.Resolve();

    // The SIMD kernel, except that while armed its first projection waits for Release: the batch that holds it is
    // then running, and the steps that arrive meanwhile queue.
    private sealed class GatedKernel : DelegatingKernel
    {
        private int _armed;
        public readonly ManualResetEventSlim Entered = new(), Released = new();
        public override string Name => "gated";
        public void Arm() => _armed = 1;

        public override void Project(ReadOnlySpan<float> input, int rows, int inner, ReadOnlySpan<float> weights, int outer,
            ReadOnlySpan<float> bias, Span<float> output)
        {
            if (Interlocked.Exchange(ref _armed, 0) == 1)
            {
                Entered.Set();
                Released.Wait(TimeSpan.FromSeconds(30));
            }
            base.Project(input, rows, inner, weights, outer, bias, output);
        }
    }

    private static List<(int Group, string Key, LocalHead Head)> Heads()
    {
        var random = new Random(7);
        var shape = new HeadGroupShape(Spec.ModelDim, Spec.HeadDim, Spec.GroupSize);
        return Enumerable.Range(0, Spec.GroupCount).Select(g =>
        {
            var weights = new HeadGroupWeights(shape, Normal(random, Spec.ModelDim * shape.QueryWidth), Normal(random, Spec.ModelDim * Spec.HeadDim),
                Normal(random, Spec.ModelDim * Spec.HeadDim), Normal(random, shape.QueryWidth), Normal(random, Spec.HeadDim), Normal(random, Spec.HeadDim));
            return (g, $"{Layer}/{g}", new LocalHead(Spec, weights, Normal(random, shape.QueryWidth * Spec.ModelDim), Guid.NewGuid()));
        }).ToList();
    }

    private static float[] Normal(Random random, int count) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();

    private static SiloPassRequest Step(string session, int position, int tokens, float[] x) => new()
    {
        Layer = Layer,
        Step = new HeadDecodeWork { Session = session, Batch = 1, Tokens = tokens, Position = position, Input = FloatBytes.ToBytes(x), Restart = position == 0 },
        Groups = [0, 1],
        Mode = OutputProjectionMode.PartialSums,
        Versions = [],
    };

    private static (StepBatcher Batcher, SessionCaches Caches, BatchStats Stats) Batcher(IHeadKernel kernel)
    {
        var caches = new SessionCaches(Options.Create(new DecodeSessionOptions()));
        var batcher = new StepBatcher(kernel, new SiloIdentity(new TestSiloDetails()), caches, new StackedOutputRows(), Options.Create(new DecodeBatchOptions()));
        return (batcher, caches, batcher.Stats);
    }

    [Fact]
    public async Task Steps_that_queue_behind_a_running_batch_run_as_one_and_each_keeps_its_own_outcome()
    {
        var heads = Heads();
        var kernel = new GatedKernel();
        var (batcher, caches, stats) = Batcher(kernel);
        var (alone, _, _) = Batcher(new SimdKernel());
        var random = new Random(3);
        string[] sessions = ["a", "bad", "c", "cancelled", "moved", "e"];
        var history = sessions.ToDictionary(s => s, _ => Normal(random, 3 * Spec.ModelDim));
        var next = sessions.ToDictionary(s => s, _ => Normal(random, Spec.ModelDim));
        foreach (var s in sessions)
        {
            await batcher.Run(Step(s, 0, 3, history[s]), heads, 0, CancellationToken.None);
            await alone.Run(Step(s, 0, 3, history[s]), heads, 0, CancellationToken.None);
        }

        kernel.Arm();
        var first = Task.Run(() => batcher.Run(Step("a", 3, 1, next["a"]), heads, 0, CancellationToken.None));
        Assert.True(kernel.Entered.Wait(TimeSpan.FromSeconds(30)), "the first step never reached the kernel");
        using var cancel = new CancellationTokenSource();
        var bad = batcher.Run(Step("bad", 3, 1, new float[Spec.ModelDim + 1]), heads, 0, CancellationToken.None);
        var c = batcher.Run(Step("c", 3, 1, next["c"]), heads, 0, CancellationToken.None);
        var cancelled = batcher.Run(Step("cancelled", 3, 1, next["cancelled"]), heads, 0, cancel.Token);
        var moved = batcher.Run(Step("moved", 5, 1, next["moved"]), heads, 0, CancellationToken.None);
        var e = batcher.Run(Step("e", 3, 1, next["e"]), heads, 0, CancellationToken.None);
        Assert.Equal(5, batcher.Waiting(Layer));
        cancel.Cancel();
        Assert.Equal(4, batcher.Waiting(Layer));
        kernel.Released.Set();

        var a = await first;
        Assert.Equal(1, a.BatchSize);
        var error = await Assert.ThrowsAsync<HeadwiseException>(() => bad);
        Assert.Equal(ErrorCode.InvalidArgument, error.Code);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        var movedShare = await moved;
        Assert.Equal(4, movedShare.BatchSize);
        Assert.All(movedShare.Groups, g => Assert.True(g.NoCache));
        Assert.Null(movedShare.Partial);
        Assert.True(movedShare.WaitedSeconds > 0);

        // Neither the failed nor the cancelled step touched its caches; the ones that ran advanced.
        foreach (var (_, key, _) in heads)
        {
            Assert.Equal(3, caches.Find(key, "bad")![0].Position);
            Assert.Equal(3, caches.Find(key, "cancelled")![0].Position);
            Assert.Equal(3, caches.Find(key, "moved")![0].Position);
            Assert.Equal(4, caches.Find(key, "c")![0].Position);
        }

        foreach (var (session, share) in new[] { ("a", a), ("c", await c), ("e", await e) })
        {
            Assert.All(share.Groups, g => Assert.False(g.NoCache));
            var expected = await alone.Run(Step(session, 3, 1, next[session]), heads, 0, CancellationToken.None);
            var want = FloatBytes.AsFloats(expected.Partial!).ToArray();
            var got = FloatBytes.AsFloats(share.Partial!).ToArray();
            float largest = want.Max(MathF.Abs);
            for (int i = 0; i < want.Length; i++)
                Assert.True(Math.Abs(got[i] - want[i]) <= 1e-5 * largest, $"session {session}: partial[{i}] is {got[i]}, alone {want[i]}");
        }
        Assert.Equal(4, (await c).BatchSize);
        var layer = Assert.Single(stats.Snapshot());
        Assert.Equal(4, layer.LargestSize);
    }
}
