using System.Buffers;
using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Telemetry;
using Headwise.Kernels;

namespace Headwise.Grains.Forward;

/// <summary>
/// A decode step of one session waiting for, or running in, a batch on this silo: its request, the head groups of it
/// this silo computes, and where its answer goes.
/// </summary>
internal sealed class PendingStep(SiloPassRequest request, IReadOnlyList<(int Group, string Key, LocalHead Head)> local, long received,
    CancellationToken cancellationToken)
{
    public SiloPassRequest Request { get; } = request;
    public HeadDecodeWork Work => Request.Step!;
    public IReadOnlyList<(int Group, string Key, LocalHead Head)> Local { get; } = local;
    public long Received { get; } = received;
    public long Queued { get; } = Stopwatch.GetTimestamp();
    public CancellationToken CancellationToken { get; } = cancellationToken;
    public int Rows => Work.Batch * Work.Tokens;
    public TaskCompletionSource<StepShare> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>This silo's share of one decode step that ran in a batch.</summary>
/// <param name="Partial">[rows, D] float32 bytes: Z of the step's answered groups times their rows of W_O, or null.</param>
/// <param name="BatchSize">Steps in the batch it ran in.</param>
/// <param name="WaitedSeconds">From its arrival to its batch's start.</param>
public sealed record StepShare(byte[]? Partial, GroupAnswer[] Groups, double ProjectionMs, int BatchSize, double WaitedSeconds);

/// <summary>
/// Computes a batch of decode steps of one layer on this silo: per local head group (the same published
/// <see cref="LocalHead"/>, so the same weights version), one <see cref="BatchedDecode"/> over the new rows of every step
/// that has a cache for it; then W_O for the rows of every step with the same answered groups in one GEMM with their
/// stacked W_O rows, split back into each step's partial sum. Each step keeps what it had alone: a group without a
/// cache at the step's position answers NoCache for that step only, a step with bad input fails alone, and its answer is
/// what the unbatched path gives within float rounding (BatchedDecodeTests, DecodeBatchingClusterTests).
/// </summary>
internal sealed class StepBatch(IHeadKernel kernel, SiloIdentity silo, SessionCaches caches, StackedOutputRows stackedRows)
{
    private sealed class Unit(int group, string key, LocalHead head)
    {
        public int Group { get; } = group;
        public string Key { get; } = key;
        public LocalHead Head { get; } = head;
        public List<(int Step, int Index)> Members { get; } = [];
    }

    /// <summary>Runs <paramref name="steps"/> and completes each one's <see cref="PendingStep.Done"/>; never throws.</summary>
    public void Run(IReadOnlyList<PendingStep> steps)
    {
        long started = Stopwatch.GetTimestamp();
        int n = steps.Count;
        var waited = new double[n];
        var failed = new Exception?[n];
        var answers = new GroupAnswer[n][];
        var z = new float[n][][];
        var units = new List<Unit>();
        for (int i = 0; i < n; i++)
        {
            var step = steps[i];
            waited[i] = Stopwatch.GetElapsedTime(step.Queued, started).TotalSeconds;
            answers[i] = new GroupAnswer[step.Local.Count];
            z[i] = new float[step.Local.Count][];
            int modelDim = step.Local[0].Head.Spec.ModelDim;
            if (step.Work.Input.Length != (long)step.Rows * modelDim * sizeof(float))
            {
                failed[i] = new HeadwiseException(ErrorCode.InvalidArgument,
                    $"input has {step.Work.Input.Length} bytes; [{step.Work.Batch}, {step.Work.Tokens}, {modelDim}] float32 needs {(long)step.Rows * modelDim * 4}.");
                continue;
            }
            for (int j = 0; j < step.Local.Count; j++)
            {
                var (group, key, head) = step.Local[j];
                var unit = FindUnit(units, group, head);
                if (unit is null) units.Add(unit = new Unit(group, key, head));
                unit.Members.Add((i, j));
            }
        }
        HeadwiseTelemetry.DecodeBatch(steps[0].Request.Layer, silo.Name, n, waited);

        try
        {
            // The head groups spread over the caller and the kernels' helpers as an unbatched small step's do (SiloPass.Compute).
            KernelThreads.For(units.Count, u => Decode(units[u], steps, answers, z, failed));
            var projection = new double[n];
            var partials = new byte[]?[n];
            Project(steps, z, failed, partials, projection);
            for (int i = 0; i < n; i++)
            {
                if (failed[i] is { } error) steps[i].Done.TrySetException(error);
                else steps[i].Done.TrySetResult(new StepShare(partials[i], answers[i], projection[i], n, waited[i]));
            }
        }
        catch (Exception e)
        {
            var failure = e is AggregateException all ? FirstFailure.Of(all) : e;
            foreach (var step in steps) step.Done.TrySetException(failure);
        }
        finally
        {
            foreach (var step in z)
                foreach (var rented in step)
                    if (rented is not null) ArrayPool<float>.Shared.Return(rented);
        }
    }

    // The batch's unit for this group of these weights (a batch has a few units: a scan, no lambda per step and group).
    private static Unit? FindUnit(List<Unit> units, int group, LocalHead head)
    {
        foreach (var unit in units)
            if (unit.Group == group && ReferenceEquals(unit.Head, head)) return unit;
        return null;
    }

    // One head group over every step of the batch that has a cache for it.
    private void Decode(Unit unit, IReadOnlyList<PendingStep> steps, GroupAnswer[][] answers, float[][][] z, Exception?[] failed)
    {
        var spec = unit.Head.Spec;
        var members = new List<(int Step, int Index, KeyValueCache[] Sequences)>(unit.Members.Count);
        foreach (var (i, j) in unit.Members)
        {
            var work = steps[i].Work;
            // As HeadDecoder: a cache that is missing or at another position is this step's NoCache, and its session
            // re-fills it; the other steps of the batch go on.
            var sequences = work.Restart ? null : caches.Find(unit.Key, work.Session);
            if (!work.Restart && (sequences is null || sequences.Length != work.Batch || sequences[0].Position != work.Position))
            {
                answers[i][j] = Answer(unit, steps[i], noCache: true, computeMs: 0, queueMs: Stopwatch.GetElapsedTime(steps[i].Received).TotalMilliseconds);
                continue;
            }
            if (sequences is null)
            {
                try
                {
                    sequences = caches.Start(unit.Key, work, spec.HeadDim, spec.Window);
                }
                catch (HeadwiseException e)
                {
                    // No room for a new session's caches here: that step fails, the others of the batch go on.
                    lock (failed) failed[i] ??= e;
                    continue;
                }
            }
            members.Add((i, j, sequences));
        }
        if (members.Count == 0) return;

        int groupWidth = spec.GroupSize * spec.HeadDim, rows = 0, sequenceCount = 0;
        foreach (var member in members)
        {
            rows += steps[member.Step].Rows;
            sequenceCount += member.Sequences.Length;
        }
        var tokens = new int[sequenceCount];
        var sequenceCaches = new KeyValueCache[tokens.Length];
        var x = ArrayPool<float>.Shared.Rent(rows * spec.ModelDim);
        var output = ArrayPool<float>.Shared.Rent(rows * groupWidth);
        try
        {
            int row = 0, sequence = 0;
            foreach (var (i, _, sequences) in members)
            {
                var work = steps[i].Work;
                FloatBytes.AsFloats(work.Input).CopyTo(x.AsSpan(row * spec.ModelDim));
                row += steps[i].Rows;
                foreach (var cache in sequences)
                {
                    tokens[sequence] = work.Tokens;
                    sequenceCaches[sequence++] = cache;
                }
            }
            long started = Stopwatch.GetTimestamp();
            BatchedDecode.Decode(kernel, unit.Head.Weights, new AttentionOptions(spec.Scale, Causal: true, spec.Window), HeadDecoder.RotaryOf(spec),
                x.AsSpan(0, rows * spec.ModelDim), tokens, sequenceCaches, output.AsSpan(0, rows * groupWidth));
            double computeMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;

            row = 0;
            foreach (var (i, j, _) in members)
            {
                var step = steps[i];
                var mine = ArrayPool<float>.Shared.Rent(step.Rows * groupWidth);
                output.AsSpan(row * groupWidth, step.Rows * groupWidth).CopyTo(mine);
                z[i][j] = mine;
                row += step.Rows;
                caches.Account(unit.Key, step.Work.Session);
                answers[i][j] = Answer(unit, step, noCache: false, computeMs, queueMs: Stopwatch.GetElapsedTime(step.Received, started).TotalMilliseconds);
            }
        }
        catch (Exception e)
        {
            foreach (var (i, _, _) in members)
                lock (failed) failed[i] ??= e;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(x);
            ArrayPool<float>.Shared.Return(output);
        }
    }

    private GroupAnswer Answer(Unit unit, PendingStep step, bool noCache, double computeMs, double queueMs) => new()
    {
        Group = unit.Group,
        Version = unit.Head.Version,
        Silo = silo.Name,
        Kernel = kernel.Name,
        ComputeMs = computeMs,
        QueueMs = queueMs,
        NoCache = noCache,
    };

    // W_O: the steps whose answered groups are the same heads share one GEMM with those heads' stacked rows of W_O.
    private void Project(IReadOnlyList<PendingStep> steps, float[][][] z, Exception?[] failed, byte[]?[] partials, double[] projectionMs)
    {
        var sets = new List<((int Group, LocalHead Head)[] Heads, List<int> Steps)>();
        for (int i = 0; i < steps.Count; i++)
        {
            if (failed[i] is not null) continue;
            List<int>? same = null;
            foreach (var (setHeads, setSteps) in sets)
                if (SameHeads(setHeads, steps[i].Local, z[i])) { same = setSteps; break; }
            if (same is not null)
            {
                same.Add(i);
                continue;
            }
            var heads = AnsweredHeads(steps[i].Local, z[i]);
            if (heads.Length > 0) sets.Add((heads, [i]));
        }
        foreach (var (heads, members) in sets)
        {
            var spec = heads[0].Head.Spec;
            int groupWidth = spec.GroupSize * spec.HeadDim, width = heads.Length * groupWidth, modelDim = spec.ModelDim;
            int rows = 0;
            foreach (int i in members) rows += steps[i].Rows;
            var concat = ArrayPool<float>.Shared.Rent(rows * width);
            var sum = ArrayPool<float>.Shared.Rent(rows * modelDim);
            try
            {
                int row = 0;
                foreach (int i in members)
                {
                    // z[i] holds a Z for exactly these groups, in the order of the step's Local list, as heads does.
                    int g = 0;
                    foreach (var answered in z[i])
                    {
                        if (answered is null) continue;
                        for (int r = 0; r < steps[i].Rows; r++)
                            answered.AsSpan(r * groupWidth, groupWidth).CopyTo(concat.AsSpan((row + r) * width + g * groupWidth, groupWidth));
                        g++;
                    }
                    row += steps[i].Rows;
                }
                var stacked = stackedRows.Get(steps[members[0]].Request.Layer, heads);
                long started = Stopwatch.GetTimestamp();
                using (HeadwiseTelemetry.StartOutputProjection(rows, width, modelDim))
                    kernel.Project(concat.AsSpan(0, rows * width), rows, width, stacked.AsSpan(0, width * modelDim), modelDim,
                        ReadOnlySpan<float>.Empty, sum.AsSpan(0, rows * modelDim));
                double ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                row = 0;
                foreach (int i in members)
                {
                    var partial = new byte[checked(steps[i].Rows * modelDim * sizeof(float))];
                    sum.AsSpan(row * modelDim, steps[i].Rows * modelDim).CopyTo(FloatBytes.AsFloats(partial.AsSpan()));
                    partials[i] = partial;
                    projectionMs[i] = ms;
                    row += steps[i].Rows;
                }
            }
            catch (Exception e)
            {
                foreach (int i in members) failed[i] ??= e;
            }
            finally
            {
                ArrayPool<float>.Shared.Return(concat);
                ArrayPool<float>.Shared.Return(sum);
            }
        }
    }
    // The step's answered groups (those with a Z), in the order of its Local list.
    private static (int Group, LocalHead Head)[] AnsweredHeads(IReadOnlyList<(int Group, string Key, LocalHead Head)> local, float[]?[] z)
    {
        int count = 0;
        foreach (var answered in z) if (answered is not null) count++;
        var heads = new (int Group, LocalHead Head)[count];
        for (int j = 0, k = 0; j < local.Count; j++)
            if (z[j] is not null) heads[k++] = (local[j].Group, local[j].Head);
        return heads;
    }

    // Whether the step answered exactly these groups of these weights, in this order.
    private static bool SameHeads((int Group, LocalHead Head)[] heads, IReadOnlyList<(int Group, string Key, LocalHead Head)> local, float[]?[] z)
    {
        int k = 0;
        for (int j = 0; j < local.Count; j++)
        {
            if (z[j] is null) continue;
            if (k == heads.Length || heads[k].Group != local[j].Group || !ReferenceEquals(heads[k].Head, local[j].Head)) return false;
            k++;
        }
        return k == heads.Length;
    }
}
