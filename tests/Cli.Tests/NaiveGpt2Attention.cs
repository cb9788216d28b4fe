namespace Headwise.Cli.Tests;

/// <summary>
/// GPT-2 attention written out in float64 scalar loops, straight from the checkpoint's tensors, as the oracle the
/// CLI's output is checked against. Shapes: x [B, T, D]; c_attn.weight [D, 3D] (Q | K | V column blocks, head h in
/// columns h·dh..(h+1)·dh of each); c_attn.bias [3D]; c_proj.weight [D, D]; c_proj.bias [D].
/// </summary>
public static class NaiveGpt2Attention
{
    /// <returns>y [B, T, D].</returns>
    public static double[] Forward(float[] x, int batch, int tokens, int modelDim, int headCount,
        float[] attnWeight, float[] attnBias, float[] projWeight, float[] projBias, bool causal, int[]? lengths)
    {
        int d = modelDim, dh = d / headCount;
        var y = new double[batch * tokens * d];
        for (int b = 0; b < batch; b++)
        {
            int length = lengths?[b] ?? tokens;
            // qkv[t, 3D] = x[t]·W + bias
            var qkv = new double[tokens, 3 * d];
            for (int t = 0; t < tokens; t++)
                for (int o = 0; o < 3 * d; o++)
                {
                    double sum = attnBias[o];
                    for (int c = 0; c < d; c++)
                        sum += (double)x[(b * tokens + t) * d + c] * attnWeight[c * 3 * d + o];
                    qkv[t, o] = sum;
                }

            // z[t, D] = concat over heads of softmax(q·kᵀ/√dh + mask)·v
            var z = new double[tokens, d];
            for (int h = 0; h < headCount; h++)
                for (int i = 0; i < tokens; i++)
                {
                    var scores = new double[tokens];
                    var visible = new bool[tokens];
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < tokens; j++)
                    {
                        visible[j] = (!causal || j <= i) && j < length;
                        if (!visible[j]) continue;
                        double dot = 0;
                        for (int e = 0; e < dh; e++)
                            dot += qkv[i, h * dh + e] * qkv[j, d + h * dh + e];
                        scores[j] = dot / Math.Sqrt(dh);
                        max = Math.Max(max, scores[j]);
                    }
                    double total = 0;
                    for (int j = 0; j < tokens; j++)
                        if (visible[j]) total += scores[j] = Math.Exp(scores[j] - max);
                    if (total == 0) continue; // a fully masked row gives zeros
                    for (int j = 0; j < tokens; j++)
                        if (visible[j])
                            for (int e = 0; e < dh; e++)
                                z[i, h * dh + e] += scores[j] / total * qkv[j, 2 * d + h * dh + e];
                }

            // y[t] = z[t]·W_O + b_O
            for (int t = 0; t < tokens; t++)
                for (int o = 0; o < d; o++)
                {
                    double sum = projBias[o];
                    for (int c = 0; c < d; c++)
                        sum += z[t, c] * projWeight[c * d + o];
                    y[(b * tokens + t) * d + o] = sum;
                }
        }
        return y;
    }
}
