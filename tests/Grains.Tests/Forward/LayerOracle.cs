using Headwise.Contracts;

namespace Headwise.Grains.Tests.Forward;

/// <summary>
/// One layer's output in plain float64 loops, straight from the stored weights (no kernel code): per group
/// Q = x·W_Q + b_Q (g heads), K, V once; RoPE as Hugging Face writes it (q·cos + rotate_half(q)·sin on the first
/// RopeDim dims of each head); scores scaled, masked (causal hides later keys, a window hides keys ≥ window back, a length
/// hides padded keys); softmax; Z; then Y = Σ_groups Z·W_O[group rows] + b_O.
/// </summary>
internal static class LayerOracle
{
    /// <param name="x">[B, T, D].</param>
    /// <returns>Y [B, T, D] and Z [B, Hq, T, dh].</returns>
    public static (double[] Y, double[] Z) Forward(AttentionSpec spec, LayerWeights weights, float[] x, int batch, int tokens, bool causal,
        int[]? lengths = null)
    {
        spec = spec.Resolve();
        int d = spec.ModelDim, dh = spec.HeadDim, g = spec.GroupSize, hq = spec.HeadCount;
        var y = new double[batch * tokens * d];
        var heads = new double[batch * hq * tokens * dh];
        double scale = spec.Scale;
        for (int b = 0; b < batch; b++)
        {
            int length = lengths is { Length: > 0 } ? lengths[b] : tokens;
            var xb = x.AsSpan(b * tokens * d, tokens * d).ToArray().Select(v => (double)v).ToArray();
            foreach (var group in weights.Groups)
            {
                var wq = D(group.Query); var wk = D(group.Key); var wv = D(group.Value); var wo = D(group.Output);
                var q = MatMul(xb, tokens, d, wq, g * dh);
                var k = MatMul(xb, tokens, d, wk, dh);
                var v = MatMul(xb, tokens, d, wv, dh);
                if (spec.Bias)
                {
                    AddBias(q, D(group.QueryBias!));
                    AddBias(k, D(group.KeyBias!));
                    AddBias(v, D(group.ValueBias!));
                }
                if (spec.HasRope)
                {
                    for (int h = 0; h < g; h++) Rope(q, g * dh, h * dh, tokens, spec.RopeTheta, spec.RopeDim);
                    Rope(k, dh, 0, tokens, spec.RopeTheta, spec.RopeDim);
                }
                var z = new double[tokens * g * dh];
                for (int h = 0; h < g; h++)
                    for (int i = 0; i < tokens; i++)
                    {
                        var scores = new double[tokens];
                        double max = double.NegativeInfinity;
                        for (int j = 0; j < tokens; j++)
                        {
                            bool visible = j < length && (!causal || j <= i) && (spec.Window <= 0 || j > i - spec.Window);
                            if (!visible) { scores[j] = double.NegativeInfinity; continue; }
                            double s = 0;
                            for (int c = 0; c < dh; c++) s += q[i * g * dh + h * dh + c] * k[j * dh + c];
                            scores[j] = s * scale;
                            max = Math.Max(max, scores[j]);
                        }
                        if (double.IsNegativeInfinity(max)) continue; // a fully masked row gives zeros
                        double sum = 0;
                        for (int j = 0; j < tokens; j++) sum += scores[j] = double.IsNegativeInfinity(scores[j]) ? 0 : Math.Exp(scores[j] - max);
                        for (int j = 0; j < tokens; j++)
                            for (int c = 0; c < dh; c++)
                                z[i * g * dh + h * dh + c] += scores[j] / sum * v[j * dh + c];
                    }
                for (int i = 0; i < tokens; i++)
                {
                    for (int h = 0; h < g; h++)
                        for (int c = 0; c < dh; c++)
                            heads[((b * hq + group.Group * g + h) * tokens + i) * dh + c] = z[i * g * dh + h * dh + c];
                    for (int o = 0; o < d; o++)
                    {
                        double s = 0;
                        for (int c = 0; c < g * dh; c++) s += z[i * g * dh + c] * wo[c * d + o];
                        y[(b * tokens + i) * d + o] += s;
                    }
                }
            }
            if (weights.OutputBias is { } bias)
            {
                var bo = D(bias);
                for (int i = 0; i < tokens; i++)
                    for (int o = 0; o < d; o++)
                        y[(b * tokens + i) * d + o] += bo[o];
            }
        }
        return (y, heads);
    }

    private static double[] D(byte[] bytes) => FloatBytes.ToFloats(bytes).Select(v => (double)v).ToArray();

    private static double[] MatMul(double[] a, int rows, int inner, double[] w, int outer)
    {
        var result = new double[rows * outer];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < inner; i++)
            {
                double av = a[r * inner + i];
                for (int o = 0; o < outer; o++) result[r * outer + o] += av * w[i * outer + o];
            }
        return result;
    }

    private static void AddBias(double[] rows, double[] bias)
    {
        for (int i = 0; i < rows.Length; i++) rows[i] += bias[i % bias.Length];
    }

    // Hugging Face: x' = x·cos + rotate_half(x)·sin, rotate_half(x) = cat(−x2, x1), inv_freq_i = θ^(−2i/dim), position t.
    private static void Rope(double[] rows, int stride, int offset, int tokens, double theta, int dim)
    {
        int half = dim / 2;
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < half; i++)
            {
                double angle = t / Math.Pow(theta, 2.0 * i / dim);
                double x1 = rows[t * stride + offset + i], x2 = rows[t * stride + offset + i + half];
                rows[t * stride + offset + i] = x1 * Math.Cos(angle) - x2 * Math.Sin(angle);
                rows[t * stride + offset + i + half] = x2 * Math.Cos(angle) + x1 * Math.Sin(angle);
            }
    }
}
