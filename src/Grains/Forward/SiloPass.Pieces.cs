using System.Buffers;
using System.Diagnostics;
using System.Numerics.Tensors;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Telemetry;
using Headwise.Kernels;

namespace Headwise.Grains.Forward;

// A forward pass whose X arrives on the tensor channel, computed in pieces of rows as they arrive: each piece's Q, K, V
// projected on the compute threads while the next piece is on the wire, then each block of query rows' attention and its
// rows of the partial sum as soon as the keys it sees are in, the partial's bytes ready for its parent block by block.
public sealed partial class SiloPass
{
    // Whether this silo's groups of the pass can run in pieces: a forward pass wanting only Y, of at least two pieces,
    // whose kernel applies every head's RoPE itself.
    private static bool InPieces(SiloPassRequest request, List<(int Group, string Key, LocalHead Head)> local, IHeadKernel kernel) =>
        PieceRowsOf(request) is var pieceRows and > 0 && local.Count > 0 && request.Work is { ReturnAttention: false } work
        && request.Mode != OutputProjectionMode.Gathered && work.Batch * work.Tokens > pieceRows
        && local.TrueForAll(l => !l.Head.Spec.HasRope || kernel.SupportsRotary);

    // Rows of a piece, as the coordinator chose them for the pass: a multiple of the kernels' 24-row query tile, so blocks
    // give the bits of the fused kernel.
    private static int PieceRowsOf(SiloPassRequest request) => request.PieceRows > 0 ? (request.PieceRows + 23) / 24 * 24 : 0;

    /// <summary>Blocks of the flattened [batch·tokens] rows: PieceRows at a time, never across a sequence.</summary>
    internal static List<(int Start, int End)> Cuts(int batch, int tokens, int pieceRows)
    {
        var cuts = new List<(int, int)>();
        for (int sequence = 0; sequence < batch; sequence++)
            for (int start = 0; start < tokens; start += pieceRows)
                cuts.Add((sequence * tokens + start, sequence * tokens + Math.Min(tokens, start + pieceRows)));
        return cuts;
    }

    /// <param name="input">X in the pass's wire format, arriving.</param>
    /// <param name="partialOut">Where the partial sum goes, advanced block by block as it is sent on; null: a pooled buffer.</param>
    private async Task<Computed> ComputeInPieces(SiloPassRequest request, TensorProgress input, List<(int Group, string Key, LocalHead Head)> local,
        long received, TensorProgress? partialOut, CancellationToken cancellationToken)
    {
        var work = request.Work!;
        var spec = local[0].Head.Spec;
        int batch = work.Batch, tokens = work.Tokens, rows = batch * tokens, modelDim = spec.ModelDim;
        int groupWidth = spec.GroupSize * spec.HeadDim;
        bool bf16 = work.Wire == WireFormat.Bf16;
        int valueBytes = bf16 ? 2 : sizeof(float);
        int pieceRows = PieceRowsOf(request);
        var cuts = Cuts(batch, tokens, pieceRows);
        if (input.Length != (long)rows * modelDim * valueBytes)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"X holds {input.Length} bytes; [{batch}, {tokens}, {modelDim}] needs {(long)rows * modelDim * valueBytes}.");
        int parts = Math.Min(compute.MaximumConcurrencyLevel, local.Count);
        var stacked = stackedRows.Get(request.Layer, local.Select(l => (l.Group, l.Head)).ToArray());
        int partialLength = checked(rows * modelDim * sizeof(float));
        var partial = partialOut?.Buffer ?? buffers.Rent(partialLength);
        var pieces = new HeadGroupPieces[local.Count];
        var scopes = new HeadwiseTelemetry.HeadScope[local.Count];
        var computeMs = new double[local.Count];
        double queueMs = Stopwatch.GetElapsedTime(received).TotalMilliseconds;
        double projectionMs = 0;
        float[]? decoded = bf16 ? ArrayPool<float>.Shared.Rent(tokens * modelDim) : null; // a piece is at most a sequence
        var parent = Activity.Current;
        bool done = false;
        try
        {
            for (int i = 0; i < local.Count; i++)
            {
                var (_, key, head) = local[i];
                // Every group's span is a child of the pass, not of the group before it.
                scopes[i] = HeadwiseTelemetry.StartHead(key, work, head.Weights.Shape, silo.Name, kernel.Name);
                Activity.Current = parent;
                var options = new AttentionOptions(head.Spec.Scale, work.Causal, head.Spec.Window, HeadDecoder.RotaryOf(head.Spec));
                pieces[i] = kernel.BeginPieces(head.Weights, batch, tokens, work.Lengths, options);
            }

            // A piece is at least pieceRows (or the rest of its sequence) and takes every whole tile of rows already in:
            // where X arrives faster than the kernels take it, pieces grow and the weights are read fewer times.
            int attended = 0, projected = 0, pieceCount = 0;
            while (projected < rows)
            {
                int sequenceEnd = (projected / tokens + 1) * tokens;
                await Arrived(input, Math.Min(sequenceEnd, projected + pieceRows) * modelDim * valueBytes, cancellationToken);
                cancellationToken.ThrowIfCancellationRequested();
                if (cancelled.IsCancelled(work.ForwardId))
                    throw new OperationCanceledException($"forward {work.ForwardId} was called off by its coordinator.");
                int start = projected, inRows = input.Available / (modelDim * valueBytes);
                int end = inRows >= sequenceEnd ? sequenceEnd : start + (inRows - start) / 24 * 24;
                int from = attended;
                (attended, double ms) = await compute.Run(() =>
                {
                    if (decoded is not null)
                        Bf16.Decode(input.Buffer.AsSpan(start * modelDim * 2, (end - start) * modelDim * 2), decoded.AsSpan(0, (end - start) * modelDim));
                    compute.For(parts, part =>
                    {
                        ReadOnlySpan<float> x = decoded is not null
                            ? decoded.AsSpan(0, (end - start) * modelDim)
                            : FloatBytes.AsFloats(input.Buffer.AsSpan(start * modelDim * sizeof(float), (end - start) * modelDim * sizeof(float)));
                        for (int i = local.Count * part / parts; i < local.Count * (part + 1) / parts; i++)
                        {
                            long began = Stopwatch.GetTimestamp();
                            pieces[i].Project(x, start);
                            computeMs[i] += Stopwatch.GetElapsedTime(began).TotalMilliseconds;
                        }
                    });
                    // Every block whose keys are in now: with a causal mask, this piece's own; else none until a sequence is
                    // whole. Each block's rows of the partial sum are ready for the parent as soon as they are added up.
                    int next = from;
                    double blocksMs = 0;
                    foreach (var (first, last) in cuts)
                    {
                        if (first < next) continue;
                        if (pieces[0].KeysNeededBy(last) > end) break;
                        blocksMs += AttendBlock(pieces, first, last, parts, groupWidth, modelDim, stacked, partial, computeMs);
                        partialOut?.Advance(last * modelDim * sizeof(float));
                        next = last;
                    }
                    return (next, blocksMs);
                }, cancellationToken);
                projectionMs += ms;
                projected = end;
                pieceCount++;
            }
            if (attended != rows) throw new InvalidOperationException($"the pass's pieces attended {attended} of {rows} rows.");

            var answers = new GroupAnswer[local.Count];
            for (int i = 0; i < local.Count; i++)
            {
                scopes[i].Computed(computeMs[i], null);
                scopes[i].Tag(HeadwiseTelemetry.PiecesAttribute, pieceCount);
                scopes[i].Tag(HeadwiseTelemetry.PieceRowsAttribute, pieceRows);
                answers[i] = new GroupAnswer
                {
                    Group = local[i].Group,
                    Version = local[i].Head.Version,
                    Silo = silo.Name,
                    Kernel = kernel.Name,
                    ComputeMs = computeMs[i],
                    QueueMs = queueMs,
                    Pieces = pieceCount,
                };
            }
            done = true;
            return new Computed(partial, answers, projectionMs);
        }
        catch (Exception e)
        {
            foreach (var scope in scopes) scope?.Failed(e);
            throw;
        }
        finally
        {
            foreach (var group in pieces) group?.Dispose();
            foreach (var scope in scopes) scope?.Dispose();
            Activity.Current = parent;
            if (decoded is not null) ArrayPool<float>.Shared.Return(decoded);
            // A failed pass's partial may still be read by its send; only a buffer nothing else holds goes back.
            if (!done && partialOut is null) buffers.Return(partial);
        }
    }

    // Query rows [first, last) of every group, and their rows of the partial sum: part p attends groups
    // [Count·p/parts, Count·(p+1)/parts) and multiplies their Z by their rows of W_O, as ComputeInParts does for the whole
    // pass; the parts' sums are added in part order. Returns the W_O milliseconds (the slowest part's).
    private double AttendBlock(HeadGroupPieces[] pieces, int first, int last, int parts, int groupWidth, int modelDim, float[] stacked,
        byte[] partial, double[] computeMs)
    {
        int rows = last - first;
        var into = FloatBytes.AsFloats(partial.AsSpan()).Slice(first * modelDim, rows * modelDim);
        var sums = new float[parts][];
        var projectionMs = new double[parts];
        try
        {
            compute.For(parts, part =>
            {
                int firstGroup = pieces.Length * part / parts, endGroup = pieces.Length * (part + 1) / parts;
                int width = (endGroup - firstGroup) * groupWidth;
                var concat = ArrayPool<float>.Shared.Rent(rows * width);
                var z = endGroup - firstGroup == 1 ? null : ArrayPool<float>.Shared.Rent(rows * groupWidth);
                try
                {
                    for (int i = firstGroup; i < endGroup; i++)
                    {
                        long began = Stopwatch.GetTimestamp();
                        // One group's Z is its own concatenation; several are laid side by side.
                        pieces[i].Attend(first, last, (z ?? concat).AsSpan(0, rows * groupWidth));
                        if (z is not null)
                            for (int row = 0; row < rows; row++)
                                z.AsSpan(row * groupWidth, groupWidth).CopyTo(concat.AsSpan(row * width + (i - firstGroup) * groupWidth, groupWidth));
                        computeMs[i] += Stopwatch.GetElapsedTime(began).TotalMilliseconds;
                    }
                    long started = Stopwatch.GetTimestamp();
                    var target = part == 0
                        ? FloatBytes.AsFloats(partial.AsSpan()).Slice(first * modelDim, rows * modelDim)
                        : (sums[part] = ArrayPool<float>.Shared.Rent(rows * modelDim)).AsSpan(0, rows * modelDim);
                    kernel.Project(concat.AsSpan(0, rows * width), rows, width, stacked.AsSpan(firstGroup * groupWidth * modelDim, width * modelDim),
                        modelDim, ReadOnlySpan<float>.Empty, target);
                    projectionMs[part] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(concat);
                    if (z is not null) ArrayPool<float>.Shared.Return(z);
                }
            });
            for (int part = 1; part < parts; part++)
                TensorPrimitives.Add(into, sums[part].AsSpan(0, into.Length), into);
            return projectionMs.Max();
        }
        finally
        {
            foreach (var rented in sums)
                if (rented is not null) ArrayPool<float>.Shared.Return(rented);
        }
    }
}
