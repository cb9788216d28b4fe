namespace Headwise.Kernels.Tests;

/// <summary>
/// Independent float64 formulas for checking the oracle itself: whole matrices, an additive −∞ mask and a
/// softmax over the full row, the way the attention paper writes it, rather than the reference kernel's
/// loops that skip masked keys.
/// </summary>
internal static class NaiveMath
{
    /// <summary>y = x·W + b as double[rows, outer].</summary>
    public static double[,] MatMul(float[] x, int rows, int inner, float[] w, int outer, float[]? bias)
    {
        var y = new double[rows, outer];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < outer; j++)
            {
                double sum = bias is null ? 0 : bias[j];
                for (int k = 0; k < inner; k++)
                    sum += (double)x[i * inner + k] * w[k * outer + j];
                y[i, j] = sum;
            }
        return y;
    }

    /// <summary>Z [tokens, g·dh] and attention [g, tokens, tokens] of one sequence.</summary>
    public static (double[,] Z, double[,,] Attention) Attention(float[] x, int tokens, HeadGroupWeights weights,
        double scale, bool causal, int window, int length)
    {
        var shape = weights.Shape;
        int dh = shape.HeadDim;
        var q = MatMul(x, tokens, shape.ModelDim, weights.Query, shape.QueryWidth, weights.QueryBias);
        var k = MatMul(x, tokens, shape.ModelDim, weights.Key, dh, weights.KeyBias);
        var v = MatMul(x, tokens, shape.ModelDim, weights.Value, dh, weights.ValueBias);
        var z = new double[tokens, shape.QueryWidth];
        var attention = new double[shape.QueryHeads, tokens, tokens];
        for (int h = 0; h < shape.QueryHeads; h++)
        {
            for (int i = 0; i < tokens; i++)
            {
                var s = new double[tokens];
                for (int j = 0; j < tokens; j++)
                {
                    double dot = 0;
                    for (int d = 0; d < dh; d++) dot += q[i, h * dh + d] * k[j, d];
                    bool masked = (causal && j > i) || (window > 0 && i - j >= window) || j >= length;
                    s[j] = dot * scale + (masked ? double.NegativeInfinity : 0);
                }
                double max = s.Max();
                if (double.IsNegativeInfinity(max)) continue; // no visible key: zeros by definition
                double sum = s.Sum(value => Math.Exp(value - max));
                for (int j = 0; j < tokens; j++)
                {
                    double p = Math.Exp(s[j] - max) / sum;
                    attention[h, i, j] = p;
                    for (int d = 0; d < dh; d++) z[i, h * dh + d] += p * v[j, d];
                }
            }
        }
        return (z, attention);
    }
}
