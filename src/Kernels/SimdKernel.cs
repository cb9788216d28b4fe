using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Kernels;

/// <summary>
/// Version 3: fused, packed, tiled float32 attention on the widest SIMD registers the machine runs
/// (Vector512/256/128 with FMA, down to scalar code), checked against <see cref="ReferenceKernel"/> to a
/// max abs error of 1e-4 and a relative Frobenius error of 1e-5.
/// <list type="bullet">
/// <item>Q, K and V of a group come from one GEMM over the group's [D × (g+2)·dh] weights, packed into
/// 32-column panels once per weights object (<see cref="Prepare"/>, or the first <see cref="Attend"/>); the
/// bias is where the accumulators start.</item>
/// <item>Attention is <see cref="AttentionTiles"/>: 8 query rows (12 on the 16-register widths) × 256-key chunks, online softmax with
/// deferred rescaling, chunks outside the visible keys never computed; the T×T scores are never held unless
/// the caller asks for the attention map.</item>
/// <item><see cref="Project"/> (W_O) runs the same GEMM on W_O where it lies (each thread packs the blocks it
/// uses), rows split over the cores by <see cref="KernelParallelism"/> (columns, for a decode step).</item>
/// <item>Scratch is rented from <see cref="ArrayPool{T}.Shared"/> and the parallel job is reused, so the
/// steady state allocates nothing.</item>
/// </list>
/// Measured on the 2-core AVX-512 Xeon of this project (docs/performance.md, bench `table` and `parts`): one
/// GPT-2-small head group at T = 128 211× faster than the reference (0.26 ms against 55 ms); the whole
/// GPT-2-small layer at T = 1024 on both cores 30 ms, 0.84× the OpenBLAS pipeline's perfect two-core figure
/// and 77% of the measured FMA peak. Not measured against libtorch (none on these machines).
/// Version 2 (the unpacked 4×2-vector GEMM with a softmax materialised per 8-row tile) is in git history.
/// </summary>
public sealed unsafe class SimdKernel : IHeadKernel
{
    private readonly VectorWidth width;
    private readonly ConditionalWeakTable<HeadGroupWeights, PackedHeadGroup> packed = new();

    /// <summary>Uses the widest vectors this machine runs in hardware.</summary>
    public SimdKernel() : this(VectorWidths.Best) { }

    /// <summary>Forces a narrower width, so tests cover the fallbacks a machine without AVX-512 would run.</summary>
    internal SimdKernel(VectorWidth width) => this.width = width;

    public string Name => "simd";

    public bool SupportsRotary => true;

    /// <summary>
    /// Packs the group's weights for this kernel now rather than on the first <see cref="Attend"/>. The packed
    /// copy lives as long as <paramref name="weights"/> does; the weights must not change after this call.
    /// </summary>
    public void Prepare(HeadGroupWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        Packed(weights);
    }

    /// <summary>The fused kernel's steps cut along rows (<see cref="SimdPieces{TOps,TVector}"/>).</summary>
    public HeadGroupPieces BeginPieces(HeadGroupWeights weights, int batch, int tokens, ReadOnlySpan<int> lengths, AttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var group = Packed(weights);
        return width switch
        {
            VectorWidth.Bits512 => new SimdPieces<Vector512Ops, Vector512<float>>(group, weights, batch, tokens, lengths, options),
            VectorWidth.Bits256 => new SimdPieces<Vector256Ops, Vector256<float>>(group, weights, batch, tokens, lengths, options),
            VectorWidth.Bits128 => new SimdPieces<Vector128Ops, Vector128<float>>(group, weights, batch, tokens, lengths, options),
            _ => new SimdPieces<ScalarOps, float>(group, weights, batch, tokens, lengths, options),
        };
    }

    internal PackedHeadGroup Packed(HeadGroupWeights weights) =>
        packed.TryGetValue(weights, out var group)
            ? group
            : packed.GetValue(weights, key => PackedHeadGroup.Create(key, width));

    public void Attend(
        // x: [batch, tokens, D]
        ReadOnlySpan<float> input, int batch, int tokens,
        // [batch], or empty when every sequence is full
        ReadOnlySpan<int> lengths,
        HeadGroupWeights weights, AttentionOptions options,
        // z: [batch, tokens, g·dh]
        Span<float> output,
        // [batch, g, tokens, tokens], or empty
        Span<float> attention)
    {
        KernelArguments.CheckAttend(input, batch, tokens, lengths, weights, output, attention);
        AttendWidth(input, batch, tokens, lengths, weights, options, output, attention, [], []);
    }

    /// <summary>The fused pass keeps the sequence's K and V where its one GEMM put them: no second projection.</summary>
    public void AttendKeepingKeys(ReadOnlySpan<float> input, int tokens, HeadGroupWeights weights, AttentionOptions options,
        Span<float> output, Span<float> keys, Span<float> values)
    {
        KernelArguments.CheckAttend(input, 1, tokens, [], weights, output, []);
        KernelArguments.CheckKeys(tokens, weights.Shape, keys, values);
        AttendWidth(input, 1, tokens, [], weights, options, output, [], keys, values);
    }

    private void AttendWidth(ReadOnlySpan<float> input, int batch, int tokens, ReadOnlySpan<int> lengths, HeadGroupWeights weights,
        AttentionOptions options, Span<float> output, Span<float> attention, Span<float> keys, Span<float> values)
    {
        var shape = weights.Shape;
        if (batch == 0 || tokens == 0 || shape.QueryWidth == 0) return;
        var group = Packed(weights);
        switch (width)
        {
            case VectorWidth.Bits512: Attend<Vector512Ops, Vector512<float>>(input, batch, tokens, lengths, group, options, output, attention, keys, values); break;
            case VectorWidth.Bits256: Attend<Vector256Ops, Vector256<float>>(input, batch, tokens, lengths, group, options, output, attention, keys, values); break;
            case VectorWidth.Bits128: Attend<Vector128Ops, Vector128<float>>(input, batch, tokens, lengths, group, options, output, attention, keys, values); break;
            default: Attend<ScalarOps, float>(input, batch, tokens, lengths, group, options, output, attention, keys, values); break;
        }
        GC.KeepAlive(group);
    }

    // keys, values: [tokens, dh] of a batch of one, or empty.
    private static void Attend<TOps, TVector>(ReadOnlySpan<float> input, int batch, int tokens, ReadOnlySpan<int> lengths,
        PackedHeadGroup group, AttentionOptions options, Span<float> output, Span<float> attention, Span<float> keys, Span<float> values)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        var shape = group.Shape;
        int modelDim = shape.ModelDim, headDim = shape.HeadDim, queryWidth = shape.QueryWidth;
        int projectionWidth = group.ProjectionWidth;
        int panelWidth = 2 * TOps.Count;
        int queryRows = AttentionTiles.QueryRows<TOps, TVector>();
        int rowsPadded = RoundUp(tokens, queryRows);
        int keysPadded = RoundUp(tokens, panelWidth);
        int headPanels = (headDim + panelWidth - 1) / panelWidth;
        bool wantAttention = !attention.IsEmpty;
        int scoreStride = AttentionTiles.ScoreStride(keysPadded, wantAttention);

        // Scratch, each piece on its own cache line: qkv [rowsPadded, (g+2)·dh], Kᵀ panels [keysPadded·dh],
        // V panels [headPanels, keysPadded, P], scores [query rows, scoreStride], accumulator [query rows, headPanels·P].
        long qkvLength = Align((long)rowsPadded * projectionWidth);
        long keyLength = Align((long)keysPadded * headDim);
        long valuePanelStride = (long)keysPadded * panelWidth;
        long valueLength = Align(headPanels * valuePanelStride);
        long scoreLength = Align((long)queryRows * scoreStride);
        long accumulatorLength = Align((long)queryRows * headPanels * panelWidth);
        long total = qkvLength + keyLength + valueLength + scoreLength + accumulatorLength + CacheLine.SlackFloats;
        float[] scratch = ArrayPool<float>.Shared.Rent(checked((int)total));
        try
        {
            fixed (float* scratchStart = scratch)
            fixed (float* x = input, z = output, map = attention, bias = group.Bias)
            {
                float* qkv = CacheLine.Align(scratchStart);
                float* keyPanels = qkv + qkvLength;
                float* valuePanels = keyPanels + keyLength;
                float* scores = valuePanels + valueLength;
                float* accumulator = scores + scoreLength;
                var weightPanels = group.Panels;
                // Rows past the sequence feed the last query block: zero keeps them finite.
                new Span<float>(qkv + (nint)tokens * projectionWidth, (rowsPadded - tokens) * projectionWidth).Clear();
                new Span<float>(keyPanels, (int)keyLength).Clear();
                new Span<float>(valuePanels, (int)valueLength).Clear();

                for (int sequence = 0; sequence < batch; sequence++)
                {
                    // qkv[tokens, (g+2)·dh] = x·[W_Q W_K W_V] + [b_Q b_K b_V]
                    Gemm.Multiply<TOps, TVector>(x + (nint)sequence * tokens * modelDim, modelDim, tokens, modelDim, weightPanels,
                        qkv, projectionWidth, accumulate: false, bias);

                    if (options.Rotary.IsEnabled)
                    {
                        // RoPE where the GEMM left Q and K, before Q is scaled and K packed: K's columns follow Q's heads,
                        // so one call rotates the g + 1 heads and computes each position's angles once.
                        options.Rotary.Apply(new Span<float>(qkv, tokens * projectionWidth), projectionWidth, tokens, shape.QueryHeads + 1, headDim, 0);
                    }
                    if (!keys.IsEmpty)
                    {
                        for (int row = 0; row < tokens; row++)
                        {
                            var projected = new ReadOnlySpan<float>(qkv + (nint)row * projectionWidth + queryWidth, 2 * headDim);
                            projected[..headDim].CopyTo(keys.Slice(row * headDim, headDim));
                            projected[headDim..].CopyTo(values.Slice(row * headDim, headDim));
                        }
                    }
                    // Scaling Q once costs tokens·g·dh multiplies; scaling the scores would cost tokens² per head.
                    for (int row = 0; row < tokens; row++)
                        ScaleRow<TOps, TVector>(qkv + (nint)row * projectionWidth, queryWidth, options.Scale);
                    PackKeys(qkv + queryWidth, projectionWidth, 0, tokens, headDim, panelWidth, keyPanels);
                    PackValues(qkv + queryWidth + headDim, projectionWidth, 0, tokens, headDim, panelWidth, keysPadded, valuePanels);

                    int length = lengths.IsEmpty ? tokens : Math.Clamp(lengths[sequence], 0, tokens);
                    float* sequenceOutput = z + (nint)sequence * tokens * queryWidth;
                    for (int head = 0; head < shape.QueryHeads; head++)
                    {
                        float* headAttention = map == null ? null : map + ((nint)sequence * shape.QueryHeads + head) * tokens * tokens;
                        AttentionTiles.Head<TOps, TVector>(qkv + head * headDim, projectionWidth, keyPanels,
                            valuePanels, (nint)valuePanelStride, tokens, headDim, length, options,
                            scores, scoreStride, accumulator, sequenceOutput + head * headDim, queryWidth, headAttention);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }
    }

    /// <summary>K rows [firstKey, endKey) (at stride, from keys' row 0) into Kᵀ panels: panel p is [dh × P] holding keys p·P..(p+1)·P.</summary>
    internal static void PackKeys(float* keys, nint stride, int firstKey, int endKey, int headDim, int panelWidth, float* panels)
    {
        for (int key = firstKey; key < endKey; key++)
        {
            float* source = keys + key * stride;
            float* target = panels + (nint)(key / panelWidth) * headDim * panelWidth + key % panelWidth;
            for (int d = 0; d < headDim; d++)
                target[d * panelWidth] = source[d];
        }
    }

    /// <summary>V rows [firstKey, endKey) (at stride, from values' row 0) into panels of P columns: panel j is [keysPadded × P].</summary>
    internal static void PackValues(float* values, nint stride, int firstKey, int endKey, int headDim, int panelWidth, int keysPadded, float* panels)
    {
        for (int first = 0; first < headDim; first += panelWidth)
        {
            int count = Math.Min(panelWidth, headDim - first);
            float* panel = panels + (nint)(first / panelWidth) * keysPadded * panelWidth;
            for (int key = firstKey; key < endKey; key++)
                new ReadOnlySpan<float>(values + key * stride + first, count).CopyTo(new Span<float>(panel + (nint)key * panelWidth, count));
        }
    }

    internal static void ScaleRow<TOps, TVector>(float* row, int count, float factor)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        TVector vectorFactor = TOps.Broadcast(factor);
        int j = 0;
        for (; j + TOps.Count <= count; j += TOps.Count)
            TOps.Store(TOps.Multiply(TOps.Load(row + j), vectorFactor), row + j);
        for (; j < count; j++) row[j] *= factor;
    }

    internal static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

    /// <summary>Rounds a float count up to a whole cache line.</summary>
    internal static long Align(long floats) => (floats + 15) / 16 * 16;

    public void Project(
        // x: [rows, inner]
        ReadOnlySpan<float> input, int rows, int inner,
        // W: [inner, outer]
        ReadOnlySpan<float> weights, int outer,
        // b: [outer], or empty
        ReadOnlySpan<float> bias,
        // y: [rows, outer]
        Span<float> output)
    {
        KernelArguments.CheckProject(input, rows, inner, weights, outer, bias, output);
        if (rows == 0 || outer == 0) return;
        int panelWidth = Gemm.PanelWidth(width);
        int tailColumns = outer % panelWidth;
        float[]? tailArray = tailColumns == 0 ? null : ArrayPool<float>.Shared.Rent(Math.Max(1, inner * panelWidth));
        try
        {
            // Spans cannot cross into the worker threads, so the pinned buffers travel as pointers.
            fixed (float* x = input, w = weights, b = bias, y = output, tail = tailArray)
            {
                if (tail != null)
                    Gemm.Pack(w + (outer - tailColumns), outer, inner, tailColumns, panelWidth, tail);
                var job = new ProjectJob(x, rows, inner, w, outer, panelWidth, tail, b, bias.Length, y, width);
                if (rows >= Gemm.RowBlock * Environment.ProcessorCount)
                {
                    // One range per thread: each range packs all of W_O's blocks once, so fewer ranges copy less.
                    KernelParallelism.ForRowRanges(rows, (long)inner * outer, job, static (job, start, end) => job.RunRows(start, end),
                        chunksPerThread: 1);
                }
                else
                {
                    // Too few rows to share (a decode step): the cores split W_O's column panels instead. Such a
                    // call streams all of W_O for little arithmetic, so each panel counts as at least 8 rows of work.
                    int panelCount = (outer + panelWidth - 1) / panelWidth;
                    long workPerPanel = (long)Math.Max(rows, Gemm.RowBlock) * inner * panelWidth;
                    KernelParallelism.ForRowRanges(panelCount, workPerPanel, job, static (job, start, end) => job.RunPanels(start, end), alignment: 1);
                }
            }
        }
        finally
        {
            if (tailArray is not null) ArrayPool<float>.Shared.Return(tailArray);
        }
    }

    /// <summary>One <see cref="Project"/> call's pinned buffers, so each worker can run its own rows or column panels.</summary>
    private readonly struct ProjectJob(float* input, int rows, int inner, float* weights, int outer, int panelWidth, float* tail,
        float* bias, int biasLength, float* output, VectorWidth width)
    {
        /// <summary>y rows [start, end).</summary>
        public void RunRows(int start, int end) => Run(start, end, 0, outer);

        /// <summary>y columns of panels [start, end), every row.</summary>
        public void RunPanels(int start, int end) => Run(0, rows, start * panelWidth, Math.Min(outer, end * panelWidth));

        private void Run(int firstRow, int endRow, int firstColumn, int endColumn)
        {
            int columns = endColumn - firstColumn;
            float* y = output + (nint)firstRow * outer + firstColumn;
            // The packed tail is the matrix's last, narrow panel: it belongs to whichever range ends at outer.
            var panels = Panels.InPlace(weights + firstColumn, outer, inner, columns, panelWidth, endColumn == outer ? tail : null);
            Gemm.Multiply(width, input + (nint)firstRow * inner, inner, endRow - firstRow, inner, panels, y, outer, accumulate: false,
                biasLength == 0 ? null : bias + firstColumn);
        }
    }
}
