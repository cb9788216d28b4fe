using System.Buffers;
using System.Diagnostics;
using System.Numerics.Tensors;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Telemetry;
using Headwise.Kernels;

namespace Headwise.Grains.Forward;

// This silo's own head groups and its rows of W_O, on the compute threads.
public sealed partial class SiloPass
{
    /// <param name="Partial">[rows, D] float32 bytes, or null.</param>
    private sealed record Computed(byte[]? Partial, GroupAnswer[] Groups, double ProjectionMs);

    // On a compute thread: the heads over the compute threads, then this silo's rows of W_O (row-parallel: Z · its rows).
    private Computed Compute(SiloPassRequest request, byte[]? localInput, List<(int Group, string Key, LocalHead Head)> local, long received,
        CancellationToken cancellationToken)
    {
        var spec = local[0].Head.Spec;
        var forward = request.Work;
        var step = request.Step;
        byte[] input = localInput
            ?? (forward is null ? step!.Input : forward.Wire == WireFormat.Bf16 ? Bf16.DecodeToFloatBytes(forward.Input) : forward.Input);
        int batch = forward?.Batch ?? step!.Batch, tokens = forward?.Tokens ?? step!.Tokens;
        int rows = batch * tokens, groupWidth = spec.GroupSize * spec.HeadDim, modelDim = spec.ModelDim;
        bool gather = request.Mode == OutputProjectionMode.Gathered;
        var answers = new GroupAnswer[local.Count];
        var z = new float[local.Count][];

        void Group(int i)
        {
            var (group, key, head) = local[i];
            double queueMs = Stopwatch.GetElapsedTime(received).TotalMilliseconds;
            byte[]? attention = null, gathered = null;
            bool noCache = false;
            double computeMs;
            if (forward is not null)
            {
                // A gathered Z is computed straight into the bytes that travel; a Z only this silo reads (partial sums)
                // goes to a pooled buffer.
                Span<float> output;
                if (gather)
                {
                    gathered = new byte[checked(rows * groupWidth * sizeof(float))];
                    output = FloatBytes.AsFloats(gathered.AsSpan());
                }
                else
                {
                    z[i] = ArrayPool<float>.Shared.Rent(rows * groupWidth);
                    output = z[i].AsSpan(0, rows * groupWidth);
                }
                attention = forward.ReturnAttention
                    ? new byte[checked(batch * spec.GroupSize * tokens * tokens * sizeof(float))]
                    : null;
                computeMs = HeadAttention.Run(key, forward with { Input = input }, FloatBytes.AsFloats(input), head, kernel, silo.Name, cancelled,
                    cancellationToken, output, attention is null ? Span<float>.Empty : FloatBytes.AsFloats(attention.AsSpan()), attention);
            }
            else
            {
                var outcome = HeadDecoder.Decode(key, step!, spec, head.Weights, head.Version, kernel, silo.Name, caches);
                if (outcome.Output is not { } bytes) noCache = true;
                else if (gather) gathered = bytes;
                else z[i] = Pooled(FloatBytes.AsFloats(bytes));
                computeMs = outcome.ComputeMs;
            }
            answers[i] = new GroupAnswer
            {
                Group = group,
                Version = head.Version,
                Silo = silo.Name,
                Kernel = kernel.Name,
                ComputeMs = computeMs,
                QueueMs = queueMs,
                Output = gathered,
                Attention = attention,
                NoCache = noCache,
            };
        }

        try
        {
            // A partial sum on a compute thread (a forward pass, a decode step of more than a few rows) with at least one group
            // per compute thread: each thread takes a run of groups and multiplies their Z by their own rows of W_O at once (the
            // silos' row-parallel split, inside the silo). One fork-join instead of two, no gather of every Z, no thread waiting
            // at a barrier between the heads and W_O; at T = 128 the layer's best took 6–13% less time on AVX-512 (level on
            // AVX2; docs/performance.md). The runs are fixed rather than handed to whichever thread is free: the partials' sum
            // order, so every bit of Y, stays the same.
            int parts = Math.Min(compute.MaximumConcurrencyLevel, local.Count);
            if (!gather && parts > 1 && KernelThreads.OwnThreadOnly)
                return ComputeInParts(request.Layer, local, parts, rows, groupWidth, modelDim, pooled: forward is not null, z, answers, Group);

            // A small step runs on the caller's thread (see Run): its heads spread over the caller and the kernels' helpers, not
            // behind a forward pass that may hold the compute threads.
            bool small = step is not null && rows <= SmallStepRows;
            (small ? (Action<int, Action<int>>)CallerFor : compute.For)(local.Count, Group);
            if (gather) return new Computed(null, answers, 0);

            var answered = Enumerable.Range(0, local.Count).Where(i => z[i] is not null).ToArray();
            if (answered.Length == 0) return new Computed(null, answers, 0);
            long started = Stopwatch.GetTimestamp();
            var stacked = stackedRows.Get(request.Layer, answered.Select(i => (local[i].Group, local[i].Head)).ToArray());
            // The partial sum is written straight into the bytes that travel (or that the root adds b_O to); a forward
            // pass's comes from the pool, warm memory, and goes back once sent on or answered.
            int partialLength = checked(rows * modelDim * sizeof(float));
            var partial = forward is not null ? buffers.Rent(partialLength) : new byte[partialLength];
            using (HeadwiseTelemetry.StartOutputProjection(rows, answered.Length * groupWidth, modelDim))
                ProjectRows(Concat(z, answered, rows, groupWidth), rows, answered.Length * groupWidth, stacked, modelDim, partial);
            return new Computed(partial, answers, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        finally
        {
            foreach (var rented in z)
                if (rented is not null) ArrayPool<float>.Shared.Return(rented);
        }
    }

    // Part p computes groups [Count·p/parts, Count·(p+1)/parts) and their share of the partial sum; part 0 writes into the
    // bytes that travel, the others into pooled floats added to it at the end. A decode step's group without a cache at
    // the step's position (no Z: it is re-filled and projected by the session) adds nothing: its block of Z is zeros.
    private Computed ComputeInParts(string layer, List<(int Group, string Key, LocalHead Head)> local, int parts, int rows, int groupWidth,
        int modelDim, bool pooled, float[][] z, GroupAnswer[] answers, Action<int> group)
    {
        var stacked = stackedRows.Get(layer, local.Select(l => (l.Group, l.Head)).ToArray());
        int partialLength = checked(rows * modelDim * sizeof(float));
        // A forward pass's partial comes from the pool and goes back once sent on or answered; a decode step's is its own.
        var partial = pooled ? buffers.Rent(partialLength) : new byte[partialLength];
        var sums = new float[parts][];
        var projectionMs = new double[parts];
        bool done = false;
        try
        {
            compute.For(parts, part =>
            {
                int first = local.Count * part / parts, end = local.Count * (part + 1) / parts;
                for (int i = first; i < end; i++) group(i);
                long started = Stopwatch.GetTimestamp();
                int width = (end - first) * groupWidth;
                bool none = true;
                for (int i = first; i < end; i++) none &= z[i] is null;
                if (none)
                {
                    if (part == 0) partial.AsSpan(0, partialLength).Clear();
                    return;
                }
                var into = part == 0
                    ? FloatBytes.AsFloats(partial.AsSpan(0, partialLength))
                    : (sums[part] = ArrayPool<float>.Shared.Rent(rows * modelDim)).AsSpan(0, rows * modelDim);
                // One group's Z is its own concatenation.
                var concat = end - first == 1 ? null : Concat(z, Enumerable.Range(first, end - first).ToArray(), rows, groupWidth);
                try
                {
                    using (HeadwiseTelemetry.StartOutputProjection(rows, width, modelDim))
                        kernel.Project((concat ?? z[first]).AsSpan(0, rows * width), rows, width,
                            stacked.AsSpan(first * groupWidth * modelDim, width * modelDim), modelDim, ReadOnlySpan<float>.Empty, into);
                }
                finally
                {
                    if (concat is not null) ArrayPool<float>.Shared.Return(concat);
                }
                projectionMs[part] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            });
            done = true;
            // Every group without a cache: no partial, as when the groups run one after another.
            if (z.All(array => array is null))
            {
                if (pooled) buffers.Return(partial);
                return new Computed(null, answers, 0);
            }
            var sum = FloatBytes.AsFloats(partial.AsSpan(0, partialLength));
            for (int part = 1; part < parts; part++)
                if (sums[part] is { } share) TensorPrimitives.Add(sum, share.AsSpan(0, sum.Length), sum);
            return new Computed(partial, answers, projectionMs.Max());
        }
        finally
        {
            foreach (var rented in sums)
                if (rented is not null) ArrayPool<float>.Shared.Return(rented);
            if (!done && pooled) buffers.Return(partial);
        }
    }

    // The Z of the groups `which`, side by side: [rows × which·g·dh] at the front of a pooled buffer the caller returns.
    private static float[] Concat(float[][] z, int[] which, int rows, int groupWidth)
    {
        int width = which.Length * groupWidth;
        var concat = ArrayPool<float>.Shared.Rent(rows * width);
        for (int j = 0; j < which.Length; j++)
        {
            var from = z[which[j]];
            for (int row = 0; row < rows; row++)
            {
                var block = concat.AsSpan(row * width + j * groupWidth, groupWidth);
                if (from is null) block.Clear(); // a group without Z adds nothing to the product
                else from.AsSpan(row * groupWidth, groupWidth).CopyTo(block);
            }
        }
        return concat;
    }

    // y = Z·W_O rows: on a compute thread its rows are split over the compute threads, each pinned to its core (kernels
    // there do not split themselves); elsewhere the kernel splits it over its own helpers. Returns the pooled `z` once done.
    private void ProjectRows(float[] z, int rows, int width, float[] weights, int modelDim, byte[] output)
    {
        try
        {
            const int leastRows = 64; // below this a second thread's wake-up costs more than its half of the rows saves
            int parts = Math.Min(compute.MaximumConcurrencyLevel, rows / leastRows);
            if (parts <= 1 || !KernelThreads.OwnThreadOnly)
            {
                kernel.Project(z.AsSpan(0, rows * width), rows, width, weights.AsSpan(0, width * modelDim), modelDim,
                    ReadOnlySpan<float>.Empty, FloatBytes.AsFloats(output.AsSpan()));
                return;
            }
            compute.For(parts, part =>
            {
                // Ranges start on the GEMM's 8-row block.
                int start = rows * part / parts & ~7, end = part == parts - 1 ? rows : rows * (part + 1) / parts & ~7;
                kernel.Project(z.AsSpan(start * width, (end - start) * width), end - start, width, weights.AsSpan(0, width * modelDim), modelDim,
                    ReadOnlySpan<float>.Empty, FloatBytes.AsFloats(output.AsSpan()).Slice(start * modelDim, (end - start) * modelDim));
            });
        }
        finally
        {
            ArrayPool<float>.Shared.Return(z);
        }
    }

    private static void CallerFor(int count, Action<int> body)
    {
        try
        {
            KernelThreads.For(count, body);
        }
        catch (AggregateException e)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(FirstFailure.Of(e));
        }
    }

    private static float[] Pooled(ReadOnlySpan<float> values)
    {
        var copy = ArrayPool<float>.Shared.Rent(values.Length);
        values.CopyTo(copy);
        return copy;
    }
}
