using Headwise.Contracts;
using Headwise.Grains.Forward;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Tests.Forward;

/// <summary>
/// <see cref="ForwardBatcher"/> around a pass that this test controls: a forward that finds its lane idle runs at
/// once, alone and unchanged; the forwards that arrive while it runs go as one command, their sequences side by side
/// in arrival order, and each caller gets back exactly its own rows. The pass here answers Y = f(X) row by row with f
/// different per row content, so a caller handed another's rows, or rows shifted by one sequence, fails. Lanes
/// separate token counts and masks, the rows cap and the silo's batch limit split batches, a caller that gives up while
/// queued leaves the queue, and a failed batch fails each of its callers.
/// </summary>
public sealed class ForwardBatcherTests
{
    private const string Layer = "m/0";
    private const int ModelDim = 4;

    // A pass whose call k < holds waits at Gates[k] (Arrivals[k] says it got there), so the forwards behind it queue; it
    // records what it ran, in whose context, with which token, and answers y = 3x + 1 per value.
    private sealed class HeldPass(int holds = 1)
    {
        public readonly List<ForwardCommand> Ran = [];
        public readonly TaskCompletionSource[] Gates = Sources(holds), Arrivals = Sources(holds);
        public TaskCompletionSource Entered => Arrivals[0];
        public TaskCompletionSource Release => Gates[0];
        public Exception? FailWith;
        public readonly List<string?> Callers = [];
        public readonly List<CancellationToken> Tokens = [];
        private int _calls = -1;

        private static TaskCompletionSource[] Sources(int count) =>
            Enumerable.Range(0, count).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();

        public async Task<ForwardResult> Run(ForwardCommand command, CancellationToken cancellationToken)
        {
            lock (Ran)
            {
                Ran.Add(command);
                Callers.Add(Caller.Value);
                Tokens.Add(cancellationToken);
            }
            int call = Interlocked.Increment(ref _calls);
            if (call < Gates.Length)
            {
                Arrivals[call].TrySetResult();
                await Gates[call].Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }
            if (FailWith is { } failure) throw failure;
            var y = FloatBytes.AsFloats(command.Input).ToArray().Select(v => 3 * v + 1).ToArray();
            // X went to one other silo and a partial sum as large came back.
            long bytes = command.Input.LongLength;
            return new ForwardResult
            {
                Output = FloatBytes.ToBytes(y), Heads = [], ModelDim = ModelDim, HeadCount = 1, HeadDim = ModelDim, TraceId = "batch",
                Silos = [new SiloTraffic { Silo = "other", Groups = 1, BytesSent = bytes, BytesReceived = bytes }],
            };
        }
    }

    // Which caller's execution context a pass ran in.
    private static readonly AsyncLocal<string?> Caller = new();

    // Run as caller `who`: its own execution context, as a gRPC request's.
    private static Task<ForwardResult> RunAs(string who, ForwardBatcher batcher, ForwardCommand command, HeldPass pass,
        CancellationToken cancellationToken = default) =>
        Task.Run(() =>
        {
            Caller.Value = who;
            return batcher.Run(Layer, command, pass.Run, cancellationToken);
        });

    private static ForwardBatcher Batcher(int maxRows = 1024, int maxBatch = 64, bool on = true, int takesRows = 32, int passes = 1) =>
        new(Options.Create(new ForwardBatchOptions
            {
                ForwardBatching = on, ForwardBatchMaxRows = maxRows, ForwardBatchTakesRows = takesRows, ForwardBatchPasses = passes,
            }),
            Options.Create(new ForwardLimits { MaxBatch = maxBatch }), new SiloIdentity(new TestSiloDetails()), new TensorBuffers());

    private static ForwardCommand Command(int seed, int batch = 1, int tokens = 3, bool causal = true, int[]? lengths = null)
    {
        var random = new Random(seed);
        var x = Enumerable.Range(0, batch * tokens * ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        return new ForwardCommand
        {
            Batch = batch, Tokens = tokens, ModelDim = ModelDim, Input = FloatBytes.ToBytes(x), Causal = causal, Lengths = lengths ?? [],
        };
    }

    private static void AssertOwnRows(ForwardCommand command, ForwardResult result)
    {
        var expected = FloatBytes.AsFloats(command.Input).ToArray().Select(v => 3 * v + 1).ToArray();
        Assert.Equal(expected, FloatBytes.AsFloats(result.Output).ToArray());
        // Its share of the pass's traffic: the bytes of its own rows, whatever the batch.
        var traffic = Assert.Single(result.Silos);
        Assert.Equal(command.Input.LongLength, traffic.BytesSent);
        Assert.Equal(command.Input.LongLength, traffic.BytesReceived);
    }

    [Fact]
    public async Task A_forward_on_an_idle_lane_runs_at_once_alone_and_unchanged()
    {
        var pass = new HeldPass();
        pass.Release.SetResult();
        var command = Command(1);
        var result = await Batcher().Run(Layer, command, pass.Run, CancellationToken.None);
        Assert.Same(command, Assert.Single(pass.Ran));
        AssertOwnRows(command, result);
    }

    [Fact]
    public async Task Forwards_that_arrive_while_one_runs_go_as_one_pass_and_each_gets_its_own_rows()
    {
        var batcher = Batcher();
        var pass = new HeldPass();
        var first = Command(1);
        var running = batcher.Run(Layer, first, pass.Run, CancellationToken.None);
        await pass.Entered.Task;
        // Mixed batch sizes and lengths: one caller gave lengths, two did not.
        var queued = new[] { Command(2, batch: 2), Command(3, lengths: [2]), Command(4) };
        var answers = queued.Select(c => batcher.Run(Layer, c, pass.Run, CancellationToken.None)).ToArray();
        await WaitUntil(() => batcher.Waiting(Layer) == 3);
        pass.Release.SetResult();

        AssertOwnRows(first, await running);
        for (int i = 0; i < queued.Length; i++) AssertOwnRows(queued[i], await answers[i]);
        Assert.Equal(2, pass.Ran.Count);
        var merged = pass.Ran[1];
        Assert.Equal(4, merged.Batch);
        Assert.Equal(3, merged.Tokens);
        Assert.True(merged.Causal);
        Assert.Equal(queued.SelectMany(c => c.Input).ToArray(), merged.Input);
        // Sequences without lengths are whole (3 tokens); the one that gave 2 keeps it, in its place.
        Assert.Equal([3, 3, 2, 3], merged.Lengths);
    }

    [Fact]
    public async Task Lanes_keep_token_counts_and_masks_apart_and_caps_split_batches()
    {
        var batcher = Batcher(maxRows: 7, maxBatch: 3);
        var pass = new HeldPass();
        var running = batcher.Run(Layer, Command(1), pass.Run, CancellationToken.None);
        await pass.Entered.Task;
        // Same lane as the first: 3 tokens, causal. Rows 3 + 3 fit the cap of 7; the third would make 9.
        var lane = new[] { Command(2), Command(3), Command(4) };
        var answers = lane.Select(c => batcher.Run(Layer, c, pass.Run, CancellationToken.None)).ToList();
        await WaitUntil(() => batcher.Waiting(Layer) == 3);
        // Other lanes run at once: another token count, another mask.
        var otherTokens = Command(5, tokens: 4);
        var otherMask = Command(6, causal: false);
        AssertOwnRows(otherTokens, await batcher.Run(Layer, otherTokens, pass.Run, CancellationToken.None));
        AssertOwnRows(otherMask, await batcher.Run(Layer, otherMask, pass.Run, CancellationToken.None));
        pass.Release.SetResult();
        await running;
        for (int i = 0; i < lane.Length; i++) AssertOwnRows(lane[i], await answers[i]);
        var batches = pass.Ran.Where(c => c.Tokens == 3 && c.Causal).Select(c => c.Batch).ToArray();
        Assert.Equal([1, 2, 1], batches);

        // The silo's batch limit: 2 + 2 sequences exceed MaxBatch 3.
        pass = new HeldPass();
        running = batcher.Run(Layer, Command(7, tokens: 1), pass.Run, CancellationToken.None);
        await pass.Entered.Task;
        var pairs = new[] { Command(8, batch: 2, tokens: 1), Command(9, batch: 2, tokens: 1) };
        var pairAnswers = pairs.Select(c => batcher.Run(Layer, c, pass.Run, CancellationToken.None)).ToArray();
        await WaitUntil(() => batcher.Waiting(Layer) == 2);
        pass.Release.SetResult();
        await running;
        for (int i = 0; i < pairs.Length; i++) AssertOwnRows(pairs[i], await pairAnswers[i]);
        Assert.Equal([1, 2, 2], pass.Ran.Select(c => c.Batch).ToArray());
    }

    [Fact]
    public async Task With_two_passes_per_lane_the_second_forward_runs_at_once_and_the_rest_queue_for_one_batch()
    {
        var batcher = Batcher(passes: 2);
        var pass = new HeldPass(holds: 2);
        var held = new[] { Command(1), Command(2) };
        var running = held.Select(c => batcher.Run(Layer, c, pass.Run, CancellationToken.None)).ToArray();
        await WaitUntil(() => { lock (pass.Ran) return pass.Ran.Count == 2; });
        var queued = new[] { Command(3), Command(4) };
        var answers = queued.Select(c => batcher.Run(Layer, c, pass.Run, CancellationToken.None)).ToArray();
        await WaitUntil(() => batcher.Waiting(Layer) == 2);
        pass.Gates[0].SetResult();
        pass.Gates[1].SetResult();
        for (int i = 0; i < held.Length; i++) AssertOwnRows(held[i], await running[i]);
        for (int i = 0; i < queued.Length; i++) AssertOwnRows(queued[i], await answers[i]);
        Assert.Equal([1, 1, 2], pass.Ran.Select(c => c.Batch).ToArray());
    }

    [Fact]
    public async Task A_batch_runs_in_its_first_callers_context_not_in_the_context_of_the_pass_before_it()
    {
        var batcher = Batcher();
        var pass = new HeldPass();
        var running = RunAs("lead", batcher, Command(1), pass);
        await pass.Entered.Task;
        // "second" queues before "third" starts: the batch's leader is the first caller in the queue.
        var second = RunAs("second", batcher, Command(2), pass);
        await WaitUntil(() => batcher.Waiting(Layer) == 1);
        var third = RunAs("third", batcher, Command(3), pass);
        await WaitUntil(() => batcher.Waiting(Layer) == 2);
        pass.Release.SetResult();
        await running;
        await Task.WhenAll(second, third);
        // The lead's spans and RequestContext (its trace, its start time) stay with the lead's pass.
        Assert.Equal(["lead", "second"], pass.Callers);
    }

    [Fact]
    public async Task A_caller_that_gives_up_during_its_batch_is_answered_at_once_and_the_batch_stops_only_when_all_have()
    {
        foreach (bool allLeave in new[] { false, true })
        {
            var batcher = Batcher();
            var pass = new HeldPass(holds: 2);
            var running = batcher.Run(Layer, Command(1), pass.Run, CancellationToken.None);
            await pass.Entered.Task;
            using var first = new CancellationTokenSource();
            using var second = new CancellationTokenSource();
            var leaving = RunAs("leaving", batcher, Command(2), pass, first.Token);
            var staying = Command(3);
            var stays = RunAs("staying", batcher, staying, pass, second.Token);
            await WaitUntil(() => batcher.Waiting(Layer) == 2);
            pass.Release.SetResult();
            await running;
            await pass.Arrivals[1].Task; // the batch of both is in its pass
            first.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);
            Assert.Equal(2, pass.Ran[1].Batch);
            if (!allLeave)
            {
                Assert.False(pass.Tokens[1].IsCancellationRequested);
                pass.Gates[1].SetResult();
                AssertOwnRows(staying, await stays);
            }
            else
            {
                second.Cancel();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stays);
                Assert.True(pass.Tokens[1].IsCancellationRequested, "the batch's pass runs on after all its callers gave up");
            }
        }
    }

    private sealed class Hold : IDisposable
    {
        public int Disposed;
        public void Dispose() => Interlocked.Increment(ref Disposed);
    }

    [Fact]
    public async Task A_forwards_hold_is_released_once_no_pass_reads_its_rows_not_when_its_caller_gives_up_mid_batch()
    {
        var batcher = Batcher();
        var pass = new HeldPass(holds: 2);
        var leadHold = new Hold();
        var running = batcher.Run(Layer, Command(1), pass.Run, CancellationToken.None, leadHold);
        await pass.Entered.Task;
        using var leaveQueued = new CancellationTokenSource();
        using var leaveBatch = new CancellationTokenSource();
        Hold queuedHold = new(), batchHold = new(), stayHold = new();
        var leavesQueue = batcher.Run(Layer, Command(2), pass.Run, leaveQueued.Token, queuedHold);
        await WaitUntil(() => batcher.Waiting(Layer) == 1);
        leaveQueued.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leavesQueue);
        Assert.Equal(1, queuedHold.Disposed); // it left the queue: nothing will read its rows

        var leavesBatch = batcher.Run(Layer, Command(3), pass.Run, leaveBatch.Token, batchHold);
        var stays = batcher.Run(Layer, Command(4), pass.Run, CancellationToken.None, stayHold);
        await WaitUntil(() => batcher.Waiting(Layer) == 2);
        Assert.Equal(0, leadHold.Disposed);
        pass.Gates[0].SetResult();
        await running;
        Assert.Equal(1, leadHold.Disposed);
        await pass.Arrivals[1].Task;
        leaveBatch.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leavesBatch);
        Assert.Equal(0, batchHold.Disposed); // its rows are still in the running batch
        pass.Gates[1].SetResult();
        await stays;
        // Released as the batch ends, which may be just after its answers.
        await WaitUntil(() => batchHold.Disposed == 1 && stayHold.Disposed == 1);
    }

    [Fact]
    public async Task A_caller_that_gives_up_while_queued_leaves_the_queue()
    {
        var batcher = Batcher();
        var pass = new HeldPass();
        var running = batcher.Run(Layer, Command(1), pass.Run, CancellationToken.None);
        await pass.Entered.Task;
        using var giveUp = new CancellationTokenSource();
        var leaving = batcher.Run(Layer, Command(2), pass.Run, giveUp.Token);
        var staying = Command(3);
        var stays = batcher.Run(Layer, staying, pass.Run, CancellationToken.None);
        await WaitUntil(() => batcher.Waiting(Layer) == 2);
        giveUp.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);
        Assert.Equal(1, batcher.Waiting(Layer));
        pass.Release.SetResult();
        await running;
        AssertOwnRows(staying, await stays);
        Assert.Equal([1, 1], pass.Ran.Select(c => c.Batch).ToArray());
    }

    [Fact]
    public async Task A_failed_batch_fails_each_of_its_callers_and_the_lane_runs_on()
    {
        var batcher = Batcher();
        var pass = new HeldPass();
        var running = batcher.Run(Layer, Command(1), pass.Run, CancellationToken.None);
        await pass.Entered.Task;
        var answers = new[] { Command(2), Command(3) }.Select(c => batcher.Run(Layer, c, pass.Run, CancellationToken.None)).ToArray();
        await WaitUntil(() => batcher.Waiting(Layer) == 2);
        pass.FailWith = new HeadwiseException(ErrorCode.Unavailable, "a silo was lost");
        pass.Release.SetResult();
        foreach (var answer in answers.Prepend(running))
            Assert.Equal(ErrorCode.Unavailable, (await Assert.ThrowsAsync<HeadwiseException>(() => answer)).Code);

        pass.FailWith = null;
        var after = Command(4);
        AssertOwnRows(after, await batcher.Run(Layer, after, pass.Run, CancellationToken.None));
    }

    [Fact]
    public void Only_small_forwards_that_ask_for_Y_alone_are_taken()
    {
        var batcher = Batcher(takesRows: 8);
        Assert.True(batcher.Takes(Command(1, batch: 2, tokens: 4)));
        Assert.False(batcher.Takes(Command(1, batch: 3, tokens: 3)));
        Assert.False(batcher.Takes(Command(1) with { ReturnAttention = true }));
        Assert.False(batcher.Takes(Command(1) with { ReturnHeadOutputs = true }));
        Assert.False(Batcher(on: false).Takes(Command(1)));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for the queue");
            await Task.Delay(5);
        }
    }
}
