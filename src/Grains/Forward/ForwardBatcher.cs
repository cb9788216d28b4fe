using System.Collections.Concurrent;
using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Telemetry;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Forward;

/// <summary>
/// Batches small forward passes of one layer on the silo that coordinates them. A forward that finds its lane with a
/// free pass (<see cref="ForwardBatchOptions.ForwardBatchPasses"/>) runs at once, alone: no wait when idle. Forwards of
/// the same layer, token count, mask and wire format that arrive while the lane's passes run queue, and the next pass
/// takes all of them as one batch, their sequences side by side (attention never crosses a sequence, so no caller's rows
/// meet another's). A small pass is bound by reading the layer's weights and by its per-pass messages: a batch reads and
/// sends them once for all its callers. Each caller gets its own rows of Y; the head reports, traffic and trace are the
/// batch's.
/// </summary>
public sealed class ForwardBatcher(IOptions<ForwardBatchOptions> options, IOptions<ForwardLimits> limits, SiloIdentity silo)
{
    /// <summary>Runs one forward command (the coordinator's pass, with its re-plans and retries).</summary>
    public delegate Task<ForwardResult> Pass(ForwardCommand command, CancellationToken cancellationToken);

    private sealed record Pending(ForwardCommand Command, CancellationToken Token, Activity? Span, long Queued)
    {
        public TaskCompletionSource<ForwardResult> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class Lane
    {
        public readonly Lock Lock = new();
        public readonly LinkedList<Pending> Queue = new();
        public int Running;
    }

    private readonly ConcurrentDictionary<string, Lane> _lanes = new(StringComparer.Ordinal);

    /// <summary>Whether the forward may share a pass: batching is on, it asks for Y only, and it is small.</summary>
    public bool Takes(ForwardCommand command) =>
        options.Value.ForwardBatching && !command.ReturnAttention && !command.ReturnHeadOutputs
        && (long)command.Batch * command.Tokens <= options.Value.ForwardBatchTakesRows;

    /// <summary>Forwards of the layer waiting for a batch now, over all its lanes.</summary>
    public int Waiting(string layerKey)
    {
        int waiting = 0;
        foreach (var (key, lane) in _lanes)
            if (key.StartsWith(layerKey + "\n", StringComparison.Ordinal))
                lock (lane.Lock) waiting += lane.Queue.Count;
        return waiting;
    }

    /// <summary>
    /// The answer to <paramref name="command"/>, computed alone when its lane is idle, else in the next batch of its lane.
    /// Cancelled while it waits, it leaves the queue; once its batch runs, the batch runs on for the others.
    /// </summary>
    public async Task<ForwardResult> Run(string layerKey, ForwardCommand command, Pass pass, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var lane = _lanes.GetOrAdd(LaneKey(layerKey, command), _ => new Lane());
        var pending = new Pending(command, cancellationToken, Activity.Current, Stopwatch.GetTimestamp());
        bool lead;
        lock (lane.Lock)
        {
            lead = lane.Running < options.Value.ForwardBatchPasses;
            if (lead) lane.Running++;
            else lane.Queue.AddLast(pending);
        }
        if (lead)
        {
            // The lane was idle: this forward runs now, alone, and what queued meanwhile runs after it without this
            // caller waiting for that.
            await RunBatch(layerKey, [pending], pass);
            HandOn(layerKey, lane, pass);
            return await pending.Done.Task;
        }
        using (cancellationToken.Register(() =>
               {
                   bool removed;
                   lock (lane.Lock) removed = lane.Queue.Remove(pending);
                   if (removed) pending.Done.TrySetCanceled(cancellationToken);
               }))
            return await pending.Done.Task;
    }

    private void HandOn(string layerKey, Lane lane, Pass pass)
    {
        lock (lane.Lock)
        {
            if (lane.Queue.Count == 0)
            {
                lane.Running--;
                return;
            }
        }
        _ = Task.Run(() => Drain(layerKey, lane, pass));
    }

    private async Task Drain(string layerKey, Lane lane, Pass pass)
    {
        while (true)
        {
            List<Pending> batch;
            lock (lane.Lock)
            {
                if (lane.Queue.Count == 0)
                {
                    lane.Running--;
                    return;
                }
                batch = Take(lane);
            }
            await RunBatch(layerKey, batch, pass);
        }
    }

    // The queued forwards in arrival order, while the batch stays within the rows cap and the silo's request limits (the
    // first always).
    private List<Pending> Take(Lane lane)
    {
        var batch = new List<Pending>();
        int sequences = 0;
        long rows = 0, bytes = 0;
        while (lane.Queue.First is { } node)
        {
            var command = node.Value.Command;
            if (batch.Count > 0 && (rows + (long)command.Batch * command.Tokens > options.Value.ForwardBatchMaxRows
                                    || sequences + command.Batch > limits.Value.MaxBatch
                                    || bytes + command.Input.LongLength > limits.Value.MaxRequestBytes))
                break;
            lane.Queue.RemoveFirst();
            batch.Add(node.Value);
            sequences += command.Batch;
            rows += (long)command.Batch * command.Tokens;
            bytes += command.Input.LongLength;
        }
        return batch;
    }

    // Never throws: every forward of the batch gets its answer or the batch's error.
    private async Task RunBatch(string layerKey, List<Pending> batch, Pass pass)
    {
        var waited = batch.Select(p => Stopwatch.GetElapsedTime(p.Queued).TotalSeconds).ToArray();
        HeadwiseTelemetry.ForwardBatch(layerKey, silo.Name, batch.Count, waited);
        for (int i = 0; i < batch.Count; i++)
            if (batch[i].Span is { IsAllDataRequested: true } span)
            {
                span.SetTag(HeadwiseTelemetry.BatchSizeAttribute, batch.Count);
                span.SetTag(HeadwiseTelemetry.BatchQueueAttribute, Math.Round(waited[i] * 1000, 3));
            }
        if (batch.Count == 1)
        {
            var only = batch[0];
            try
            {
                only.Done.TrySetResult(await pass(only.Command, only.Token));
            }
            catch (Exception e)
            {
                Fail(only, e);
            }
            return;
        }

        // The batch runs until every one of its callers has given up; a caller that gives up is answered at once.
        using var allGone = new CancellationTokenSource();
        int live = batch.Count;
        var registrations = batch.Select(p => p.Token.Register(() =>
        {
            p.Done.TrySetCanceled(p.Token);
            if (Interlocked.Decrement(ref live) == 0) allGone.Cancel();
        })).ToList();
        // The batch's spans (fan-out, heads, W_O) go into the trace of its first forward, which every answer names.
        var previous = Activity.Current;
        Activity.Current = batch[0].Span;
        try
        {
            var result = await pass(Merge(batch), allGone.Token);
            Split(batch, result);
        }
        catch (Exception e)
        {
            foreach (var p in batch) Fail(p, e);
        }
        finally
        {
            Activity.Current = previous;
            foreach (var registration in registrations) registration.Dispose();
        }
    }

    private static void Fail(Pending pending, Exception e)
    {
        if (e is OperationCanceledException && pending.Token.IsCancellationRequested) pending.Done.TrySetCanceled(pending.Token);
        else pending.Done.TrySetException(e);
    }

    // Sequences side by side: X concatenated along the batch; lengths given where any caller gave them.
    private static ForwardCommand Merge(List<Pending> batch)
    {
        var first = batch[0].Command;
        int tokens = first.Tokens;
        var input = new byte[batch.Sum(p => p.Command.Input.LongLength)];
        long offset = 0;
        foreach (var p in batch)
        {
            p.Command.Input.CopyTo(input, offset);
            offset += p.Command.Input.LongLength;
        }
        int[] lengths = batch.All(p => p.Command.Lengths.Length == 0)
            ? []
            : batch.SelectMany(p => p.Command.Lengths.Length > 0 ? p.Command.Lengths : Enumerable.Repeat(tokens, p.Command.Batch)).ToArray();
        return first with { Batch = batch.Sum(p => p.Command.Batch), Input = input, Lengths = lengths };
    }

    // Each caller's rows of Y, in the order its sequences went in.
    private static void Split(List<Pending> batch, ForwardResult result)
    {
        int offset = 0;
        foreach (var p in batch)
        {
            int bytes = p.Command.Batch * p.Command.Tokens * result.ModelDim * sizeof(float);
            p.Done.TrySetResult(result with { Output = result.Output.AsSpan(offset, bytes).ToArray() });
            offset += bytes;
        }
    }

    private static string LaneKey(string layerKey, ForwardCommand command) =>
        $"{layerKey}\n{command.Tokens}\n{command.Causal}\n{command.Bf16Wire}";
}
