using System.Runtime.CompilerServices;

namespace Headwise.Kernels;

/// <summary>
/// The two long passes of one query row's attention over a tiled cache (<see cref="KeyValueCache"/>: K and V in tiles of
/// 16 tokens, each [dh, 16]), register-blocked over <see cref="Block"/> dimensions at a time, over whole tiles.
/// Version 1 (TensorPrimitives, up to commit 1d278a2) made one pass over the score row per dimension: dh = 64 loads and
/// stores of every score for the scores, 64 loads of every probability for the weighted sum. Version 2 (up to commit
/// 5129465): the scores take 8 rows of Kᵀ per pass, their 8 q values broadcast in registers (a score is loaded and stored
/// once per 8 multiply-adds); the weighted sum keeps 8 accumulators, one per row of Vᵀ, so a probability is loaded once
/// per 8 rows. Measured (one query row, dh 64, AVX-512, best of 400 × 50 calls on a loaded 2-core VM): 6.0–6.2 → 5.2 µs
/// at 1024 cached keys, level (2.0–2.2 µs) at 128. Version 3 (this): the same passes over tiles instead of rows a
/// capacity apart, so 16 tokens of 8 dimensions are 8 lines of one contiguous block, and no key needs a scalar tail:
/// lanes of the first and last tile outside the visible keys are scored too (their scores are then dropped) and weighted
/// by 0. Same arithmetic, the sums grouped by tile lanes: within float rounding of the float64 oracle
/// (DecodeAttentionTests, BatchedDecodeTests). Measured with `bench caches` (docs/performance.md).
/// </summary>
internal static unsafe class CachedAttentionRows
{
    /// <summary>Rows of Kᵀ or Vᵀ per pass.</summary>
    private const int Block = 8;

    /// <summary>scores[k] = scale · Σ_d q[d] · K[k, d] for the 16 · tiles keys of the tiles from <paramref name="keys"/> on.</summary>
    public static void Scores(VectorWidth width,
        // q: [dh]
        float* query, float scale,
        // K: [tiles][dh][16], from the first tile wanted
        float* keys, int headDim, int tiles,
        // [16 · tiles]
        float* scores)
    {
        switch (width)
        {
            case VectorWidth.Bits512: Scores<Vector512Ops, System.Runtime.Intrinsics.Vector512<float>>(query, scale, keys, headDim, tiles, scores); break;
            case VectorWidth.Bits256: Scores<Vector256Ops, System.Runtime.Intrinsics.Vector256<float>>(query, scale, keys, headDim, tiles, scores); break;
            case VectorWidth.Bits128: Scores<Vector128Ops, System.Runtime.Intrinsics.Vector128<float>>(query, scale, keys, headDim, tiles, scores); break;
            default: Scores<ScalarOps, float>(query, scale, keys, headDim, tiles, scores); break;
        }
    }

    /// <summary>z[d] = inverse · Σ_k p[k] · V[k, d] for every d of the head, over the 16 · tiles keys from <paramref name="values"/> on.</summary>
    public static void WeightedSum(VectorWidth width,
        // p: [16 · tiles]
        float* weights, int tiles,
        // V: [tiles][dh][16], from the first tile wanted
        float* values, int headDim, float inverse,
        // z: [dh]
        float* output)
    {
        switch (width)
        {
            case VectorWidth.Bits512: WeightedSum<Vector512Ops, System.Runtime.Intrinsics.Vector512<float>>(weights, tiles, values, headDim, inverse, output); break;
            case VectorWidth.Bits256: WeightedSum<Vector256Ops, System.Runtime.Intrinsics.Vector256<float>>(weights, tiles, values, headDim, inverse, output); break;
            case VectorWidth.Bits128: WeightedSum<Vector128Ops, System.Runtime.Intrinsics.Vector128<float>>(weights, tiles, values, headDim, inverse, output); break;
            default: WeightedSum<ScalarOps, float>(weights, tiles, values, headDim, inverse, output); break;
        }
    }

    private const int Tile = KeyValueCache.TileTokens;

    private static void Scores<TOps, TVector>(float* query, float scale, float* keys, int headDim, int tiles, float* scores)
        where TOps : IFloatVectorOps<TVector> where TVector : struct
    {
        int stride = headDim * Tile;
        int d = 0;
        for (; d + Block <= headDim; d += Block)
            ScoreBlock<TOps, TVector>(query + d, scale, keys + d * Tile, stride, tiles, scores, accumulate: d > 0);
        for (; d < headDim; d++)
        {
            // A head width that is not a multiple of the block: the rest one dimension at a time.
            var q = TOps.Broadcast(query[d] * scale);
            for (int tile = 0; tile < tiles; tile++)
            {
                float* row = keys + tile * stride + d * Tile;
                float* score = scores + tile * Tile;
                for (int lane = 0; lane < Tile; lane += TOps.Count)
                    TOps.Store(TOps.MultiplyAdd(TOps.Load(row + lane), q, d > 0 ? TOps.Load(score + lane) : TOps.Zero), score + lane);
            }
        }
    }

    // Eight dimensions of every tile into the scores: two chains of four multiply-adds per vector of keys.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScoreBlock<TOps, TVector>(float* query, float scale, float* keys, int stride, int tiles, float* scores, bool accumulate)
        where TOps : IFloatVectorOps<TVector> where TVector : struct
    {
        var q0 = TOps.Broadcast(query[0] * scale);
        var q1 = TOps.Broadcast(query[1] * scale);
        var q2 = TOps.Broadcast(query[2] * scale);
        var q3 = TOps.Broadcast(query[3] * scale);
        var q4 = TOps.Broadcast(query[4] * scale);
        var q5 = TOps.Broadcast(query[5] * scale);
        var q6 = TOps.Broadcast(query[6] * scale);
        var q7 = TOps.Broadcast(query[7] * scale);
        for (int tile = 0; tile < tiles; tile++)
        {
            float* k = keys + tile * stride;
            float* score = scores + tile * Tile;
            for (int lane = 0; lane < Tile; lane += TOps.Count)
            {
                var low = accumulate ? TOps.Load(score + lane) : TOps.Zero;
                var high = TOps.Multiply(TOps.Load(k + 4 * Tile + lane), q4);
                low = TOps.MultiplyAdd(TOps.Load(k + lane), q0, low);
                high = TOps.MultiplyAdd(TOps.Load(k + 5 * Tile + lane), q5, high);
                low = TOps.MultiplyAdd(TOps.Load(k + Tile + lane), q1, low);
                high = TOps.MultiplyAdd(TOps.Load(k + 6 * Tile + lane), q6, high);
                low = TOps.MultiplyAdd(TOps.Load(k + 2 * Tile + lane), q2, low);
                high = TOps.MultiplyAdd(TOps.Load(k + 7 * Tile + lane), q7, high);
                low = TOps.MultiplyAdd(TOps.Load(k + 3 * Tile + lane), q3, low);
                TOps.Store(TOps.Add(low, high), score + lane);
            }
        }
    }

    private static void WeightedSum<TOps, TVector>(float* weights, int tiles, float* values, int headDim, float inverse, float* output)
        where TOps : IFloatVectorOps<TVector> where TVector : struct
    {
        int stride = headDim * Tile;
        int d = 0;
        for (; d + Block <= headDim; d += Block)
            WeightedBlock<TOps, TVector>(weights, tiles, values + d * Tile, stride, inverse, output + d);
        for (; d < headDim; d++)
        {
            var sum = TOps.Zero;
            for (int tile = 0; tile < tiles; tile++)
            {
                float* row = values + tile * stride + d * Tile;
                for (int lane = 0; lane < Tile; lane += TOps.Count)
                    sum = TOps.MultiplyAdd(TOps.Load(row + lane), TOps.Load(weights + tile * Tile + lane), sum);
            }
            output[d] = TOps.SumAcross(sum) * inverse;
        }
    }

    // Eight dimensions of every tile against the probabilities: eight accumulators, each probability vector loaded once.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WeightedBlock<TOps, TVector>(float* weights, int tiles, float* values, int stride, float inverse, float* output)
        where TOps : IFloatVectorOps<TVector> where TVector : struct
    {
        TVector a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero, a4 = TOps.Zero, a5 = TOps.Zero, a6 = TOps.Zero, a7 = TOps.Zero;
        for (int tile = 0; tile < tiles; tile++)
        {
            float* v = values + tile * stride;
            float* weight = weights + tile * Tile;
            for (int lane = 0; lane < Tile; lane += TOps.Count)
            {
                var p = TOps.Load(weight + lane);
                a0 = TOps.MultiplyAdd(TOps.Load(v + lane), p, a0);
                a1 = TOps.MultiplyAdd(TOps.Load(v + Tile + lane), p, a1);
                a2 = TOps.MultiplyAdd(TOps.Load(v + 2 * Tile + lane), p, a2);
                a3 = TOps.MultiplyAdd(TOps.Load(v + 3 * Tile + lane), p, a3);
                a4 = TOps.MultiplyAdd(TOps.Load(v + 4 * Tile + lane), p, a4);
                a5 = TOps.MultiplyAdd(TOps.Load(v + 5 * Tile + lane), p, a5);
                a6 = TOps.MultiplyAdd(TOps.Load(v + 6 * Tile + lane), p, a6);
                a7 = TOps.MultiplyAdd(TOps.Load(v + 7 * Tile + lane), p, a7);
            }
        }
        output[0] = TOps.SumAcross(a0) * inverse; output[1] = TOps.SumAcross(a1) * inverse;
        output[2] = TOps.SumAcross(a2) * inverse; output[3] = TOps.SumAcross(a3) * inverse;
        output[4] = TOps.SumAcross(a4) * inverse; output[5] = TOps.SumAcross(a5) * inverse;
        output[6] = TOps.SumAcross(a6) * inverse; output[7] = TOps.SumAcross(a7) * inverse;
    }
}
