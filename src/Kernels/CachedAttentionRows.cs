using System.Runtime.CompilerServices;

namespace Headwise.Kernels;

/// <summary>
/// The two long passes of one query row's attention over a transposed cache (<see cref="KeyValueCache"/>: Kᵀ and Vᵀ,
/// [dh, stride]), register-blocked over <see cref="Block"/> rows of the cache at a time.
/// Version 1 (TensorPrimitives, up to commit 1d278a2) made one pass over the score row per dimension: dh = 64 loads and
/// stores of every score for the scores, 64 loads of every probability for the weighted sum. Version 2 (this): the
/// scores take 8 rows of Kᵀ per pass, their 8 q values broadcast in registers (a score is loaded and stored once per 8
/// multiply-adds); the weighted sum keeps 8 accumulators, one per row of Vᵀ, so a probability is loaded once per 8 rows.
/// Same arithmetic, another summation order: within float rounding of the float64 oracle (DecodeAttentionTests,
/// BatchedDecodeTests). Measured (one query row, dh 64, AVX-512, best of 400 × 50 calls on a loaded 2-core VM):
/// 6.0–6.2 → 5.2 µs at 1024 cached keys, level (2.0–2.2 µs) at 128. The passes are bound by reading Kᵀ and Vᵀ, not
/// by the score row, once the cache leaves L1.
/// </summary>
internal static unsafe class CachedAttentionRows
{
    /// <summary>Rows of Kᵀ or Vᵀ per pass.</summary>
    private const int Block = 8;

    /// <summary>scores[k] = scale · Σ_d q[d] · Kᵀ[d, k] for the count keys from <paramref name="keys"/> on.</summary>
    public static void Scores(VectorWidth width,
        // q: [dh]
        float* query, float scale,
        // Kᵀ: [dh, stride], from the first key wanted
        float* keys, nint stride, int headDim, int count,
        // [count]
        float* scores)
    {
        switch (width)
        {
            case VectorWidth.Bits512: Scores<Vector512Ops, System.Runtime.Intrinsics.Vector512<float>>(query, scale, keys, stride, headDim, count, scores); break;
            case VectorWidth.Bits256: Scores<Vector256Ops, System.Runtime.Intrinsics.Vector256<float>>(query, scale, keys, stride, headDim, count, scores); break;
            case VectorWidth.Bits128: Scores<Vector128Ops, System.Runtime.Intrinsics.Vector128<float>>(query, scale, keys, stride, headDim, count, scores); break;
            default: Scores<ScalarOps, float>(query, scale, keys, stride, headDim, count, scores); break;
        }
    }

    /// <summary>z[d] = inverse · Σ_k p[k] · Vᵀ[d, k] for every d of the head.</summary>
    public static void WeightedSum(VectorWidth width,
        // p: [count]
        float* weights, int count,
        // Vᵀ: [dh, stride], from the first key wanted
        float* values, nint stride, int headDim, float inverse,
        // z: [dh]
        float* output)
    {
        switch (width)
        {
            case VectorWidth.Bits512: WeightedSum<Vector512Ops, System.Runtime.Intrinsics.Vector512<float>>(weights, count, values, stride, headDim, inverse, output); break;
            case VectorWidth.Bits256: WeightedSum<Vector256Ops, System.Runtime.Intrinsics.Vector256<float>>(weights, count, values, stride, headDim, inverse, output); break;
            case VectorWidth.Bits128: WeightedSum<Vector128Ops, System.Runtime.Intrinsics.Vector128<float>>(weights, count, values, stride, headDim, inverse, output); break;
            default: WeightedSum<ScalarOps, float>(weights, count, values, stride, headDim, inverse, output); break;
        }
    }

    private static void Scores<TOps, TVector>(float* query, float scale, float* keys, nint stride, int headDim, int count, float* scores)
        where TOps : IFloatVectorOps<TVector> where TVector : struct
    {
        int d = 0;
        for (; d + Block <= headDim; d += Block)
            ScoreBlock<TOps, TVector>(query + d, scale, keys + d * stride, stride, count, scores, accumulate: d > 0);
        for (; d < headDim; d++)
        {
            // A head width that is not a multiple of the block: the rest one row at a time.
            float* row = keys + d * stride;
            var q = TOps.Broadcast(query[d] * scale);
            int k = 0;
            for (; k + TOps.Count <= count; k += TOps.Count)
                TOps.Store(TOps.MultiplyAdd(TOps.Load(row + k), q, d > 0 ? TOps.Load(scores + k) : TOps.Zero), scores + k);
            for (; k < count; k++)
                scores[k] = row[k] * (query[d] * scale) + (d > 0 ? scores[k] : 0f);
        }
    }

    // Eight rows of Kᵀ into the scores: two chains of four multiply-adds per vector of keys.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScoreBlock<TOps, TVector>(float* query, float scale, float* keys, nint stride, int count, float* scores, bool accumulate)
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
        float* k0 = keys, k1 = keys + stride, k2 = keys + 2 * stride, k3 = keys + 3 * stride;
        float* k4 = keys + 4 * stride, k5 = keys + 5 * stride, k6 = keys + 6 * stride, k7 = keys + 7 * stride;
        int k = 0;
        for (; k + TOps.Count <= count; k += TOps.Count)
        {
            var low = accumulate ? TOps.Load(scores + k) : TOps.Zero;
            var high = TOps.Multiply(TOps.Load(k4 + k), q4);
            low = TOps.MultiplyAdd(TOps.Load(k0 + k), q0, low);
            high = TOps.MultiplyAdd(TOps.Load(k5 + k), q5, high);
            low = TOps.MultiplyAdd(TOps.Load(k1 + k), q1, low);
            high = TOps.MultiplyAdd(TOps.Load(k6 + k), q6, high);
            low = TOps.MultiplyAdd(TOps.Load(k2 + k), q2, low);
            high = TOps.MultiplyAdd(TOps.Load(k7 + k), q7, high);
            low = TOps.MultiplyAdd(TOps.Load(k3 + k), q3, low);
            TOps.Store(TOps.Add(low, high), scores + k);
        }
        for (; k < count; k++)
        {
            float low = accumulate ? scores[k] : 0f;
            for (int d = 0; d < Block; d++) low += keys[d * stride + k] * (query[d] * scale);
            scores[k] = low;
        }
    }

    private static void WeightedSum<TOps, TVector>(float* weights, int count, float* values, nint stride, int headDim, float inverse, float* output)
        where TOps : IFloatVectorOps<TVector> where TVector : struct
    {
        int d = 0;
        for (; d + Block <= headDim; d += Block)
            WeightedBlock<TOps, TVector>(weights, count, values + d * stride, stride, inverse, output + d);
        for (; d < headDim; d++)
        {
            float* row = values + d * stride;
            var sum = TOps.Zero;
            int k = 0;
            for (; k + TOps.Count <= count; k += TOps.Count)
                sum = TOps.MultiplyAdd(TOps.Load(row + k), TOps.Load(weights + k), sum);
            float total = TOps.SumAcross(sum);
            for (; k < count; k++) total += row[k] * weights[k];
            output[d] = total * inverse;
        }
    }

    // Eight rows of Vᵀ against the probabilities: eight accumulators, each probability vector loaded once.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WeightedBlock<TOps, TVector>(float* weights, int count, float* values, nint stride, float inverse, float* output)
        where TOps : IFloatVectorOps<TVector> where TVector : struct
    {
        float* v0 = values, v1 = values + stride, v2 = values + 2 * stride, v3 = values + 3 * stride;
        float* v4 = values + 4 * stride, v5 = values + 5 * stride, v6 = values + 6 * stride, v7 = values + 7 * stride;
        TVector a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero, a4 = TOps.Zero, a5 = TOps.Zero, a6 = TOps.Zero, a7 = TOps.Zero;
        int k = 0;
        for (; k + TOps.Count <= count; k += TOps.Count)
        {
            var p = TOps.Load(weights + k);
            a0 = TOps.MultiplyAdd(TOps.Load(v0 + k), p, a0);
            a1 = TOps.MultiplyAdd(TOps.Load(v1 + k), p, a1);
            a2 = TOps.MultiplyAdd(TOps.Load(v2 + k), p, a2);
            a3 = TOps.MultiplyAdd(TOps.Load(v3 + k), p, a3);
            a4 = TOps.MultiplyAdd(TOps.Load(v4 + k), p, a4);
            a5 = TOps.MultiplyAdd(TOps.Load(v5 + k), p, a5);
            a6 = TOps.MultiplyAdd(TOps.Load(v6 + k), p, a6);
            a7 = TOps.MultiplyAdd(TOps.Load(v7 + k), p, a7);
        }
        float s0 = TOps.SumAcross(a0), s1 = TOps.SumAcross(a1), s2 = TOps.SumAcross(a2), s3 = TOps.SumAcross(a3);
        float s4 = TOps.SumAcross(a4), s5 = TOps.SumAcross(a5), s6 = TOps.SumAcross(a6), s7 = TOps.SumAcross(a7);
        for (; k < count; k++)
        {
            float p = weights[k];
            s0 += v0[k] * p; s1 += v1[k] * p; s2 += v2[k] * p; s3 += v3[k] * p;
            s4 += v4[k] * p; s5 += v5[k] * p; s6 += v6[k] * p; s7 += v7[k] * p;
        }
        output[0] = s0 * inverse; output[1] = s1 * inverse; output[2] = s2 * inverse; output[3] = s3 * inverse;
        output[4] = s4 * inverse; output[5] = s5 * inverse; output[6] = s6 * inverse; output[7] = s7 * inverse;
    }
}
