namespace Headwise.Client.Tests;

/// <summary>
/// One layer of a checkpoint's attention in float64, written from the Hugging Face modelling code's definitions and
/// nothing of Headwise: Q = x·W_qᵀ + b_q (nn.Linear weights [out, in]), RoPE "rotate half" on the first rotary dims of
/// each head at positions 0…T−1 with the given inverse frequencies, query head h reading key/value head h / (Hq/Hkv),
/// causal, key j visible to query i iff i − window &lt; j ≤ i, softmax, Y = concat(Z)·W_oᵀ + b_o.
/// </summary>
internal sealed record HfAttentionOracle(int ModelDim, int Heads, int KvHeads, int HeadDim, double Scale, int Window, double[]? InvFreq)
{
    /// <summary>Y [T × D] for x [T × D].</summary>
    public double[] Forward(float[] x, float[] wq, float[] wk, float[] wv, float[] wo, float[]? bq, float[]? bk, float[]? bv, float[]? bo)
    {
        int d = ModelDim, dh = HeadDim, tokens = x.Length / d;
        double[] q = Linear(x, tokens, d, wq, Heads * dh, bq);
        double[] k = Linear(x, tokens, d, wk, KvHeads * dh, bk);
        double[] v = Linear(x, tokens, d, wv, KvHeads * dh, bv);
        if (InvFreq is not null)
        {
            Rotate(q, tokens, Heads);
            Rotate(k, tokens, KvHeads);
        }
        var z = new double[tokens * Heads * dh];
        for (int h = 0; h < Heads; h++)
        {
            int kv = h / (Heads / KvHeads);
            for (int i = 0; i < tokens; i++)
            {
                var scores = new double[i + 1];
                double max = double.NegativeInfinity;
                for (int j = 0; j <= i; j++)
                {
                    if (Window > 0 && j <= i - Window) { scores[j] = double.NegativeInfinity; continue; }
                    double dot = 0;
                    for (int c = 0; c < dh; c++) dot += q[(i * Heads + h) * dh + c] * k[(j * KvHeads + kv) * dh + c];
                    scores[j] = dot * Scale;
                    max = Math.Max(max, scores[j]);
                }
                double sum = scores.Sum(s => Math.Exp(s - max));
                for (int j = 0; j <= i; j++)
                {
                    double p = Math.Exp(scores[j] - max) / sum;
                    for (int c = 0; c < dh; c++) z[(i * Heads + h) * dh + c] += p * v[(j * KvHeads + kv) * dh + c];
                }
            }
        }
        var zf = z.Select(value => value).ToArray();
        return LinearDouble(zf, tokens, Heads * dh, wo, d, bo);
    }

    private void Rotate(double[] rows, int tokens, int heads)
    {
        int half = InvFreq!.Length, dh = HeadDim;
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int at = (t * heads + h) * dh;
                var a = rows.AsSpan(at, half).ToArray();
                var b = rows.AsSpan(at + half, half).ToArray();
                for (int i = 0; i < half; i++)
                {
                    double cos = Math.Cos(t * InvFreq[i]), sin = Math.Sin(t * InvFreq[i]);
                    rows[at + i] = a[i] * cos - b[i] * sin;          // x·cos + rotate_half(x)·sin, rotate_half = cat(−x2, x1)
                    rows[at + half + i] = b[i] * cos + a[i] * sin;
                }
            }
    }

    /// <summary>y = x·Wᵀ + b, W [outer × inner] as nn.Linear stores it.</summary>
    private static double[] Linear(float[] x, int rows, int inner, float[] w, int outer, float[]? b) =>
        LinearDouble(x.Select(v => (double)v).ToArray(), rows, inner, w, outer, b);

    private static double[] LinearDouble(double[] x, int rows, int inner, float[] w, int outer, float[]? b)
    {
        var y = new double[rows * outer];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outer; o++)
            {
                double sum = b is null ? 0 : b[o];
                for (int i = 0; i < inner; i++) sum += x[r * inner + i] * w[o * inner + i];
                y[r * outer + o] = sum;
            }
        return y;
    }

    /// <summary>Default RoPE inverse frequencies: 1 / θ^(2i/dim), i &lt; dim/2.</summary>
    public static double[] DefaultInvFreq(double theta, int dim) =>
        Enumerable.Range(0, dim / 2).Select(i => 1.0 / Math.Pow(theta, 2.0 * i / dim)).ToArray();

    /// <summary>[rows × cols] → [cols × rows]: GPT-2's Conv1D weights [in, out] as nn.Linear's [out, in].</summary>
    public static float[] Transpose(float[] m, int rows, int cols, int fromCol = 0, int colCount = -1)
    {
        colCount = colCount < 0 ? cols : colCount;
        var t = new float[colCount * rows];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < colCount; c++) t[c * rows + r] = m[r * cols + fromCol + c];
        return t;
    }
}
