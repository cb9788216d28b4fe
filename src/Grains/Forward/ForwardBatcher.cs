using System.Collections.Concurrent;
using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Telemetry;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Forward;

/// <summary>
/// Batches small forward passes of one layer on the silo that coordinates them. A forward that finds its lane with a
/// free pass (<see cref="ForwardBatchOptions.ForwardBatchPasses"/>) runs at once, alone: no wait when idle. Forwards of
/// the same layer, model_dim, token count, mask and wire format that arrive while the lane's passes run queue, and the next pass
/// takes all of them as one batch, their sequences side by side (attention never crosses a sequence, so no caller's rows
/// meet another's). A small pass is bound by reading the layer's weights and by its per-pass messages: a batch reads and
/// sends them once for all its callers. Each caller gets its own rows of Y; the head reports, traffic and trace are the
/// batch's.
/// </summary>
public sealed class ForwardBatcher(IOptions<ForwardBatchOptions> options, IOptions<ForwardLimits> limits, SiloIdentity silo,
    TensorBuffers buffers)
{
    /// <summary>Runs one forward command (the coordinator's pass, with its re-plans and retries).</summary>
    public delegate Task<ForwardResult> Pass(ForwardCommand command, CancellationToken cancellationToken);

    // Context: the caller's execution context (its forward span as Activity.Current, its Orleans RequestContext), so the
    // batch it leads runs as its own pass would, whoever's thread drains the lane.
    // Hold: what the caller holds for its pass (its share of the silo's pass memory): released once no pass reads its rows,
    // not when the caller gives up while its batch still runs.
    private sealed record Pending(ForwardCommand Command, CancellationToken Token, Activity? Span, ExecutionContext? Context, long Queued,
        IDisposable? Hold)
    {
        public TaskCompletionSource<ForwardResult> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private readonly ConcurrentDictionary<string, BatchLane<Pending>> _lanes = new(StringComparer.Ordinal);

    /// <summary>This coordinator's forward passes per layer that could batch, alone or together (the dashboard's silo cards).</summary>
    public BatchStats Stats { get; } = new();

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
                waiting += lane.Waiting;
        return waiting;
    }

    /// <summary>
    /// The answer to <paramref name="command"/>, computed alone when its lane is idle, else in the next batch of its lane.
    /// Cancelled while it waits, it leaves the queue; once its batch runs, the batch runs on for the others.
    /// </summary>
    /// <param name="hold">Disposed once no pass reads the forward's rows any more (it may outlive the call).</param>
    public async Task<ForwardResult> Run(string layerKey, ForwardCommand command, Pass pass, CancellationToken cancellationToken,
        IDisposable? hold = null)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            hold?.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
        }
        var lane = _lanes.GetOrAdd(LaneKey(layerKey, command), _ => new BatchLane<Pending>());
        var pending = new Pending(command, cancellationToken, Activity.Current, ExecutionContext.Capture(), Stopwatch.GetTimestamp(), hold);
        if (lane.Enter(pending, options.Value.ForwardBatchPasses))
        {
            // A pass was free: this forward runs now, alone, and what queued meanwhile runs after it without this
            // caller waiting for that. The drain takes no caller's context: each batch runs in its own leader's.
            await RunBatch(layerKey, [pending], pass);
            if (lane.HasQueued())
                using (ExecutionContext.SuppressFlow()) _ = Task.Run(() => Drain(layerKey, lane, pass));
            return await pending.Done.Task;
        }
        using (lane.LeaveWhenCancelled(pending, cancellationToken, () =>
               {
                   pending.Hold?.Dispose();
                   pending.Done.TrySetCanceled(cancellationToken);
               }))
            return await pending.Done.Task;
    }

    private async Task Drain(string layerKey, BatchLane<Pending> lane, Pass pass)
    {
        while (lane.Next(Take) is { } batch) await RunBatch(layerKey, batch, pass);
    }

    // The queued forwards in arrival order, while the batch stays within the rows cap and the silo's request limits (the
    // first always).
    private List<Pending> Take(LinkedList<Pending> queue)
    {
        var batch = new List<Pending>();
        int sequences = 0;
        long rows = 0, bytes = 0;
        // Y is as large as X: the merged answer must pass the response limit too.
        long mostBytes = Math.Min(limits.Value.MaxRequestBytes, limits.Value.MaxResponseBytes);
        while (queue.First is { } node)
        {
            var command = node.Value.Command;
            if (batch.Count > 0 && (rows + (long)command.Batch * command.Tokens > options.Value.ForwardBatchMaxRows
                                    || sequences + command.Batch > limits.Value.MaxBatch
                                    || bytes + command.Input.LongLength > mostBytes))
                break;
            queue.RemoveFirst();
            batch.Add(node.Value);
            sequences += command.Batch;
            rows += (long)command.Batch * command.Tokens;
            bytes += command.Input.LongLength;
        }
        return batch;
    }

    // Never throws: every forward of the batch gets its answer or the batch's error. The batch runs in the execution
    // context of its first caller still waiting (its span parents the pass's spans, its trace is every answer's).
    private async Task RunBatch(string layerKey, List<Pending> batch, Pass pass)
    {
        var leader = batch.FirstOrDefault(p => !p.Token.IsCancellationRequested) ?? batch[0];
        Task run = null!;
        if (leader.Context is { } context) ExecutionContext.Run(context, _ => run = RunBatchHere(layerKey, batch, pass), null);
        else run = RunBatchHere(layerKey, batch, pass);
        await run;
    }

    private async Task RunBatchHere(string layerKey, List<Pending> batch, Pass pass)
    {
        var registrations = new List<CancellationTokenRegistration>(batch.Count);
        try
        {
            var waited = batch.Select(p => Stopwatch.GetElapsedTime(p.Queued).TotalSeconds).ToArray();
            HeadwiseTelemetry.ForwardBatch(layerKey, silo.Name, batch.Count, waited);
            Stats.Record(layerKey, batch.Count, batch.Sum(p => p.Command.Batch * p.Command.Tokens));
            for (int i = 0; i < batch.Count; i++)
                if (batch[i].Span is { IsAllDataRequested: true } span)
                {
                    span.SetTag(HeadwiseTelemetry.BatchSizeAttribute, batch.Count);
                    span.SetTag(HeadwiseTelemetry.BatchQueueAttribute, Math.Round(waited[i] * 1000, 3));
                }
            if (batch.Count == 1)
            {
                batch[0].Done.TrySetResult(await pass(batch[0].Command, batch[0].Token));
                return;
            }
            // The batch runs until every one of its callers has given up; a caller that gives up is answered at once.
            using var allGone = new CancellationTokenSource();
            int live = batch.Count;
            foreach (var p in batch)
                registrations.Add(p.Token.Register(() =>
                {
                    p.Done.TrySetCanceled(p.Token);
                    if (Interlocked.Decrement(ref live) == 0) allGone.Cancel();
                }));
            var result = await pass(Merge(batch), allGone.Token);
            Split(batch, result);
            // Each caller has a copy of its rows; the merged Y (the pass's pooled partial sum) is read by nothing now.
            buffers.Return(result.Output);
        }
        catch (Exception e)
        {
            foreach (var p in batch) Fail(p, e);
        }
        finally
        {
            foreach (var registration in registrations) registration.Dispose();
            foreach (var p in batch) p.Hold?.Dispose();
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

    // Each caller's rows of Y, in the order its sequences went in. X and Y (or Z) move per row, so each caller's share of
    // the pass's traffic is its share of the rows: the callers' traffic counters add up to the pass's once.
    private static void Split(List<Pending> batch, ForwardResult result)
    {
        long totalRows = batch.Sum(p => (long)p.Command.Batch * p.Command.Tokens);
        if (batch.Any(p => p.Command.ModelDim != result.ModelDim) || totalRows * result.ModelDim * sizeof(float) != result.Output.LongLength)
            throw new HeadwiseException(ErrorCode.Internal,
                $"a batched forward's answer ({result.Output.LongLength} bytes, model_dim {result.ModelDim}) does not fit its callers' {totalRows} rows.");
        int offset = 0;
        foreach (var p in batch)
        {
            long rows = (long)p.Command.Batch * p.Command.Tokens;
            int bytes = checked((int)(rows * result.ModelDim * sizeof(float)));
            long Share(long total) => total * rows / totalRows;
            p.Done.TrySetResult(result with
            {
                Output = result.Output.AsSpan(offset, bytes).ToArray(),
                Silos = result.Silos.Select(t => t with { BytesSent = Share(t.BytesSent), BytesReceived = Share(t.BytesReceived) }).ToArray(),
                Heads = result.Heads.Select(h => h with { InputBytes = Share(h.InputBytes), OutputBytes = Share(h.OutputBytes) }).ToArray(),
            });
            offset += bytes;
        }
    }

    private static string LaneKey(string layerKey, ForwardCommand command) =>
        $"{layerKey}\n{command.ModelDim}\n{command.Tokens}\n{command.Causal}\n{command.Bf16Wire}";
}
