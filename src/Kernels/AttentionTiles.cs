using System.Runtime.CompilerServices;

namespace Headwise.Kernels;

/// <summary>
/// Z = softmax(Q·Kᵀ + mask)·V for one query head over one sequence, fused and tiled (the flash-attention
/// scheme): a block of query rows (<see cref="QueryRows{TOps,TVector}"/>: 8 on Vector512, 12 on narrower widths) at a
/// time walks the keys in chunks of <see cref="KeyChunk"/>; per chunk one GEMM gives the rows × chunk scores, an online softmax (per row an offset m and lane-wise sums l; m is raised,
/// and what was accumulated rescaled by e^(m_old − m_new), only when a chunk's scores exceed it by more than
/// e^8) turns them into weights in place, and one more GEMM adds weights·V into a rows × dh accumulator. Only rows × chunk scores ever exist, and chunks outside the rows' visible keys
/// (causal future, before the window, padding) are never computed.
/// </summary>
/// <remarks>
/// When the caller wants the attention map, the chunk is the rows' whole visible range instead, so the exact
/// probabilities can be normalised and copied out before they weigh V.
/// </remarks>
internal static unsafe class AttentionTiles
{
    /// <summary>
    /// Keys per chunk. The K and V slices of a chunk (2 × 256 × dh floats) come from L2 while a block of rows uses them;
    /// 128 and 512 measured within noise of 256 at dh = 64, and 256 was ahead at dh = 128 (bench `attention`).
    /// </summary>
    public const int KeyChunk = 256;

    /// <summary>
    /// Query rows per block: what the GEMM keeps in registers at once, so the score and weights·V tiles run its
    /// widest register block: 8 on Vector512 (one 8-row block), 12 on the 16-register widths (two 6-row blocks;
    /// 8 rows there ran as two 4-row blocks, at 73% of the AVX2 FMA peak in bench `attention 512 64`).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int QueryRows<TOps, TVector>()
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct =>
        TOps.Count == 16 ? Gemm.RowBlock : 2 * Gemm.RegisterRows<TOps, TVector>();

    /// <summary>The most query rows of any width: the size of the per-row scratch.</summary>
    public const int MaxQueryRows = 12;

    /// <summary>Floats of score scratch per query row Head needs: a chunk, or every key when the map is wanted.</summary>
    public static int ScoreStride(int keysPadded, bool wantAttention) => wantAttention ? keysPadded : KeyChunk;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Head<TOps, TVector>(
        // q: [tokens rounded up to the query rows, dh] at queryStride, already multiplied by the scale; rows past tokens are finite (zero)
        float* queries, nint queryStride,
        // Kᵀ as panels of P = 2·lanes keys: panel p is [dh × P], keys p·P.., zero past tokens
        float* keyPanels,
        // V as panels of P columns: panel j is [keysPadded × P], columns j·P.., zero-padded
        float* valuePanels, nint valuePanelStride,
        int tokens, int headDim, int length, AttentionOptions options,
        // scratch: scores [query rows × scoreStride], accumulator [query rows × ⌈dh/P⌉·P]
        float* scores, nint scoreStride, float* accumulator,
        // z rows of this head: [tokens, dh] at outputStride
        float* output, nint outputStride,
        // this head's [tokens, tokens] probabilities, or null
        float* attention)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct =>
        Head<TOps, TVector>(queries, queryStride, keyPanels, valuePanels, valuePanelStride, tokens, headDim, length, options,
            scores, scoreStride, accumulator, output, outputStride, attention, 0, tokens);

    /// <summary>
    /// The same for query rows [firstRow, endRow) only (a block of a pass computed in pieces): Z rows outside it are not
    /// written. Blocks that start on a multiple of <see cref="QueryRows{TOps,TVector}"/> give the bits of the whole call.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Head<TOps, TVector>(
        float* queries, nint queryStride, float* keyPanels, float* valuePanels, nint valuePanelStride,
        int tokens, int headDim, int length, AttentionOptions options,
        float* scores, nint scoreStride, float* accumulator, float* output, nint outputStride, float* attention,
        int firstRow, int endRow)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        int blockRows = QueryRows<TOps, TVector>();
        int lanes = TOps.Count;
        int panelWidth = 2 * lanes;
        int headPanels = (headDim + panelWidth - 1) / panelWidth;
        nint accumulatorStride = headPanels * panelWidth;
        // Per row: the offset m its weights are taken against, and its sum of weights, lane by lane.
        float* rowOffset = stackalloc float[MaxQueryRows];
        float* rowSums = stackalloc float[MaxQueryRows * 16];
        int* starts = stackalloc int[MaxQueryRows];
        int* ends = stackalloc int[MaxQueryRows];

        for (int first = firstRow; first < endRow; first += blockRows)
        {
            int rowCount = Math.Min(blockRows, endRow - first);
            // Both ends of a row's visible range only grow with the row, so the block's keys are one range.
            int unionStart = int.MaxValue, unionEnd = 0;
            for (int i = 0; i < blockRows; i++)
            {
                (starts[i], ends[i]) = i < rowCount ? options.VisibleKeyRange(first + i, length) : (0, 0);
                if (ends[i] > starts[i])
                {
                    unionStart = Math.Min(unionStart, starts[i]);
                    unionEnd = Math.Max(unionEnd, ends[i]);
                }
                rowOffset[i] = float.NegativeInfinity;
            }
            new Span<float>(rowSums, blockRows * lanes).Clear();
            new Span<float>(accumulator, blockRows * (int)accumulatorStride).Clear();

            if (unionEnd > unionStart)
            {
                // Chunks start on a key panel, so the score GEMM reads whole panels of Kᵀ.
                int chunkStart = unionStart / panelWidth * panelWidth;
                int chunk = attention == null ? KeyChunk : unionEnd - chunkStart;
                for (int start = chunkStart; start < unionEnd; start += chunk)
                {
                    int end = Math.Min(start + chunk, unionEnd);
                    int width = end - start;
                    int panels = (width + panelWidth - 1) / panelWidth;
                    // scores[rows, panels·P] = q[rows, dh] · Kᵀ[dh, start..]
                    for (int panel = 0; panel < panels; panel++)
                        Gemm.Tile<TOps, TVector>(blockRows, queries + first * queryStride, queryStride,
                            keyPanels + (nint)(start / panelWidth + panel) * headDim * panelWidth, panelWidth, headDim,
                            scores + panel * panelWidth, scoreStride, accumulate: false);

                    for (int i = 0; i < blockRows; i++)
                    {
                        float* row = scores + i * scoreStride;
                        int low = Math.Max(starts[i], start) - start, high = Math.Min(ends[i], end) - start;
                        if (high <= low)
                        {
                            new Span<float>(row, width).Clear(); // no visible key of this row in this chunk
                            continue;
                        }
                        float scale = OnlineSoftmaxRow<TOps, TVector>(row, low, high, width, ref rowOffset[i], rowSums + i * lanes);
                        if (scale != 1f) ScaleRow<TOps, TVector>(accumulator + i * accumulatorStride, (int)accumulatorStride, scale);
                    }

                    if (attention != null)
                    {
                        // One chunk holds every visible key: normalise now, so the map and Z use the same weights.
                        for (int i = 0; i < blockRows; i++)
                        {
                            float* row = scores + i * scoreStride;
                            float sum = TOps.SumAcross(TOps.Load(rowSums + i * lanes));
                            if (sum > 0f)
                            {
                                ScaleRow<TOps, TVector>(row, panels * panelWidth, 1f / sum);
                                new Span<float>(rowSums + i * lanes, lanes).Clear();
                                rowSums[i * lanes] = 1f; // the weights now sum to 1
                            }
                            if (i >= rowCount) continue;
                            var map = new Span<float>(attention + (nint)(first + i) * tokens, tokens);
                            map.Clear();
                            new ReadOnlySpan<float>(row, width).CopyTo(map[start..]);
                        }
                    }

                    // accumulator[rows, dh] += weights[rows, width] · V[start..end, dh]
                    for (int panel = 0; panel < headPanels; panel++)
                        Gemm.Tile<TOps, TVector>(blockRows, scores, scoreStride,
                            valuePanels + panel * valuePanelStride + (nint)start * panelWidth, panelWidth, width,
                            accumulator + panel * panelWidth, accumulatorStride, accumulate: true);
                }
            }
            else if (attention != null)
            {
                new Span<float>(attention + (nint)first * tokens, rowCount * tokens).Clear();
            }

            // z = accumulator / l; a row that saw no key keeps l = 0 and gives zeros.
            for (int i = 0; i < rowCount; i++)
            {
                float* z = output + (first + i) * outputStride;
                float sum = TOps.SumAcross(TOps.Load(rowSums + i * lanes));
                if (sum > 0f)
                    ScaleInto<TOps, TVector>(accumulator + i * accumulatorStride, headDim, 1f / sum, z);
                else
                    new Span<float>(z, headDim).Clear();
            }
        }
    }

    /// <summary>
    /// How far a chunk's scores may rise above a row's offset before the row is rebased: weights stay below
    /// e^8 ≈ 3000, far from float's range, and most chunks skip the rebase and its horizontal reductions.
    /// </summary>
    private const float RebaseMargin = 8f;

    /// <summary>
    /// Turns the visible scores [low, high) of one row of a chunk into weights e^(s − m) in place, zeroes the
    /// rest of [0, width), and adds them to the row's lane-wise sums. The offset m is the row's running max,
    /// updated lazily (the flash-attention online softmax with deferred rescaling): only when the chunk's max
    /// exceeds m by more than <see cref="RebaseMargin"/> (and on the row's first chunk) is m raised to it; then
    /// the sums shrink by e^(m_old − m_new) here and the caller must shrink the row's accumulation by the
    /// returned factor. Otherwise the factor is 1 and no reduction across lanes happens at all.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float OnlineSoftmaxRow<TOps, TVector>(float* row, int low, int high, int width, ref float offset, float* sums)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        int count = TOps.Count;
        // Whole vectors over [vectorStart, vectorEnd); the lanes in it but outside [low, high) are −∞ (weight 0).
        int vectorStart = low / count * count;
        int vectorEnd = (high + count - 1) / count * count;
        if (vectorStart != low || vectorEnd != high)
        {
            for (int j = vectorStart; j < low; j++) row[j] = float.NegativeInfinity;
            for (int j = high; j < vectorEnd; j++) row[j] = float.NegativeInfinity;
        }
        if (vectorStart > 0) new Span<float>(row, vectorStart).Clear();
        if (vectorEnd < width) new Span<float>(row + vectorEnd, width - vectorEnd).Clear();

        TVector max = TOps.Broadcast(float.NegativeInfinity);
        for (int j = vectorStart; j < vectorEnd; j += count)
            max = TOps.Max(max, TOps.Load(row + j));
        float scale = 1f;
        if (TOps.AnyGreaterThan(max, offset + RebaseMargin))
        {
            float newOffset = TOps.MaxAcross(max);
            // −∞ − finite is −∞ and e^−∞ = 0: a row's first chunk finds zero sums to scale.
            scale = offset == float.NegativeInfinity ? 0f : MathF.Exp(offset - newOffset);
            offset = newOffset;
            TOps.Store(TOps.Multiply(TOps.Load(sums), TOps.Broadcast(scale)), sums);
        }

        TVector exponentOffset = TOps.ExpOffset(offset);
        TVector sum = TOps.Load(sums);
        for (int j = vectorStart; j < vectorEnd; j += count)
        {
            TVector weight = TOps.ExpMinus(TOps.Load(row + j), exponentOffset);
            TOps.Store(weight, row + j);
            sum = TOps.Add(sum, weight);
        }
        // The −∞ lanes came out as at most 2^−125 (never denormal, see ExpNonPositive): masked keys must weigh
        // exactly 0 in Z and in the map. What they added to the sum (< 1e−36) is far below its rounding.
        for (int j = vectorStart; j < low; j++) row[j] = 0f;
        for (int j = high; j < vectorEnd; j++) row[j] = 0f;
        TOps.Store(sum, sums);
        return scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaleInto<TOps, TVector>(float* source, int count, float factor, float* destination)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        TVector vectorFactor = TOps.Broadcast(factor);
        int j = 0;
        for (; j + TOps.Count <= count; j += TOps.Count)
            TOps.Store(TOps.Multiply(TOps.Load(source + j), vectorFactor), destination + j);
        for (; j < count; j++) destination[j] = source[j] * factor;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaleRow<TOps, TVector>(float* row, int count, float factor)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        TVector vectorFactor = TOps.Broadcast(factor);
        int j = 0;
        for (; j + TOps.Count <= count; j += TOps.Count)
            TOps.Store(TOps.Multiply(TOps.Load(row + j), vectorFactor), row + j);
        for (; j < count; j++) row[j] *= factor;
    }
}
