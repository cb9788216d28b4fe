using System.Collections.Concurrent;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Kernels;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Forward;

/// <summary>
/// Batches the small decode steps of different sessions of one layer on this silo (continuous batching): a step that
/// finds its layer idle runs at once, alone, on its caller's thread, as an unbatched step would (no wait when idle);
/// steps that arrive while a batch of their layer computes queue, and the next batch takes all of them (up to
/// <see cref="DecodeBatchOptions.DecodeBatchMax"/> steps and <see cref="DecodeBatchOptions.DecodeBatchMaxRows"/> rows)
/// as one pass over the weights (<see cref="StepBatch"/>). A CPU decode step is memory-bound: 64 sessions' steps read
/// W_Q/W_K/W_V/W_O once instead of 64 times. The batch grows with the load by itself: the longer a pass takes, the
/// more steps queue for the next one.
/// </summary>
public sealed class StepBatcher(IHeadKernel kernel, SiloIdentity silo, SessionCaches caches, StackedOutputRows stackedRows,
    IOptions<DecodeBatchOptions> options)
{
    private readonly ConcurrentDictionary<string, BatchLane<PendingStep>> _lanes = new(StringComparer.Ordinal);
    private readonly StepBatch _batch = new(kernel, silo, caches, stackedRows);

    /// <summary>This silo's decode passes per layer, batched or not (the dashboard's silo cards).</summary>
    public BatchStats Stats { get; } = new();

    /// <summary>Steps of the layer ("model/layer") waiting on this silo for a batch now.</summary>
    public int Waiting(string layer) => _lanes.TryGetValue(layer, out var lane) ? lane.Waiting : 0;

    /// <summary>Whether the step goes through a batch: batching is on, and its Z stays here for the partial sum.</summary>
    public bool Takes(SiloPassRequest request) =>
        options.Value.DecodeBatching && request.Step is not null && request.Mode == OutputProjectionMode.PartialSums;

    /// <summary>
    /// This silo's share of the step: its groups' Z times their W_O rows. Cancelled only while it waits for a batch;
    /// once its batch runs, it completes (its caches have the new rows).
    /// </summary>
    /// <param name="inline">
    /// Whether a step that finds its layer idle may compute on the caller's thread. Yes for a session's own grain (it
    /// blocks only its own session); no for the silo's relay grain, one activation for every session's steps: computing
    /// in its turn would keep the next sessions' steps from even reaching the queue, and no batch would ever form.
    /// </param>
    public async Task<StepShare> Run(SiloPassRequest request, IReadOnlyList<(int Group, string Key, LocalHead Head)> local, long received,
        CancellationToken cancellationToken, bool inline = true)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var lane = _lanes.GetOrAdd(request.Layer, _ => new BatchLane<PendingStep>());
        var step = new PendingStep(request, local, received, cancellationToken);
        if (lane.Enter(step, passes: 1))
        {
            // The layer was idle: this caller runs its batch (itself alone) at once, here when it may; what queued
            // meanwhile runs on the thread pool, so this step answers now.
            List<PendingStep> alone = [step];
            if (inline) Compute(alone);
            else await Task.Run(() => Compute(alone), CancellationToken.None);
            if (lane.HasQueued()) _ = Task.Run(() => Drain(lane));
            return await step.Done.Task;
        }
        using (lane.LeaveWhenCancelled(step, cancellationToken, () => step.Done.TrySetCanceled(cancellationToken)))
            return await step.Done.Task;
    }

    private void Drain(BatchLane<PendingStep> lane)
    {
        while (lane.Next(Take) is { } batch) Compute(batch);
    }

    // Counted before it runs: running it answers its steps, and whoever reads the stats after an answer sees its batch
    // (recorded after, the count raced the answer: StepBatcherTests once read the largest batch as 1 on CI).
    private void Compute(List<PendingStep> batch)
    {
        Stats.Record(batch[0].Request.Layer, batch.Count, batch.Sum(s => s.Rows));
        _batch.Run(batch);
    }

    // The queued steps in arrival order, up to the caps (the first always, however large). A session's second step
    // (a retry behind one still queued) waits for the next batch: one batch appends to each cache once.
    private List<PendingStep> Take(LinkedList<PendingStep> queue)
    {
        var batch = new List<PendingStep>();
        var sessions = new HashSet<string>(StringComparer.Ordinal);
        int rows = 0, most = options.Value.DecodeBatchMax, mostRows = options.Value.DecodeBatchMaxRows;
        for (var node = queue.First; node is not null && batch.Count < most;)
        {
            var next = node.Next;
            var step = node.Value;
            if (batch.Count > 0 && rows + step.Rows > mostRows) break;
            if (sessions.Add(step.Work.Session))
            {
                queue.Remove(node);
                batch.Add(step);
                rows += step.Rows;
            }
            node = next;
        }
        return batch;
    }
}
