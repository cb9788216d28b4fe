namespace Headwise.Contracts.Tests;

/// <summary>
/// Plain float64 loops that compute one layer's attention output for one sequence, twice and independently:
/// from a golden file's raw layout tensors (the layout's own math, as tests/golden/README.md describes it) and
/// from imported <see cref="GroupWeights"/> (per group, Q = x·W_Q + b_Q, Y = Σ_groups Z_group·W_O rows + b_O).
/// Masks: causal, and with <c>window</c> &gt; 0 query i also hides keys j ≤ i − window.
/// </summary>
internal static class AttentionOracle
{
    /// <summary>x: [T × D] of sequence <paramref name="batch"/> of the file's input.</summary>
    public static double[] Input(SafetensorsFile file, int batch)
    {
        var input = file.Get("input");
        int tokens = (int)input.Shape[1], d = (int)input.Shape[2];
        return input.ToFloat32().AsSpan(batch * tokens * d, tokens * d).ToArray().Select(v => (double)v).ToArray();
    }

    /// <summary>Y: [T × D] straight from the layout tensors of layer <paramref name="layer"/>.</summary>
    public static double[] FromFile(SafetensorsFile file, int layer, double[] x, int window)
    {
        var m = file.Metadata;
        int d = int.Parse(m["model_dim"]), hq = int.Parse(m["head_count"]), hkv = int.Parse(m["kv_head_count"]);
        int dh = int.Parse(m["head_dim"]), tokens = x.Length / d;
        bool bias = m["bias"] == "true";
        string p = m["prefix"].Replace("{layer}", layer.ToString());
        double[] T(string name) => file.Get(p + name).ToFloat32().Select(v => (double)v).ToArray();

        var heads = new double[tokens * hq * dh]; // concat(Z): [T × Hq·dh], head 0 first
        double[] y;
        if (m["layout"] == "gpt2")
        {
            // Conv1D: qkv = x·W + b, W [D, 3D]; Q | K | V column blocks, head h at columns h·dh of each.
            double[] qkv = MatMul(x, tokens, d, T("c_attn.weight"), 3 * d);
            if (bias) AddBias(qkv, T("c_attn.bias"));
            for (int h = 0; h < hq; h++)
            {
                double[] z = Attend(Columns(qkv, 3 * d, h * dh, dh), Columns(qkv, 3 * d, d + h * dh, dh),
                    Columns(qkv, 3 * d, 2 * d + h * dh, dh), tokens, dh, window);
                Place(z, heads, hq * dh, h * dh, dh);
            }
            y = MatMul(heads, tokens, hq * dh, T("c_proj.weight"), d);
            if (bias) AddBias(y, T("c_proj.bias"));
        }
        else
        {
            // Linear: q = x·Wqᵀ + bq, Wq [Hq·dh, D]; query head h uses key/value head h / (Hq/Hkv).
            double[] q = MatMulTransposed(x, tokens, d, T("q_proj.weight"), hq * dh);
            double[] k = MatMulTransposed(x, tokens, d, T("k_proj.weight"), hkv * dh);
            double[] v = MatMulTransposed(x, tokens, d, T("v_proj.weight"), hkv * dh);
            if (bias)
            {
                AddBias(q, T("q_proj.bias"));
                AddBias(k, T("k_proj.bias"));
                AddBias(v, T("v_proj.bias"));
            }
            for (int h = 0; h < hq; h++)
            {
                int kv = h / (hq / hkv);
                double[] z = Attend(Columns(q, hq * dh, h * dh, dh), Columns(k, hkv * dh, kv * dh, dh),
                    Columns(v, hkv * dh, kv * dh, dh), tokens, dh, window);
                Place(z, heads, hq * dh, h * dh, dh);
            }
            y = MatMulTransposed(heads, tokens, hq * dh, T("o_proj.weight"), d);
            if (bias) AddBias(y, T("o_proj.bias"));
        }
        return y;
    }

    /// <summary>Y: [T × D] from one layer's imported groups.</summary>
    public static double[] FromGroups(LayerWeights layer, AttentionSpec spec, double[] x, int window)
    {
        int d = spec.ModelDim, dh = spec.HeadDim, g = spec.HeadCount / spec.KvHeadCount, tokens = x.Length / d;
        var y = new double[tokens * d];
        foreach (GroupWeights group in layer.Groups)
        {
            double[] q = MatMul(x, tokens, d, Doubles(group.Query), g * dh);   // [T × g·dh]
            double[] k = MatMul(x, tokens, d, Doubles(group.Key), dh);         // [T × dh]
            double[] v = MatMul(x, tokens, d, Doubles(group.Value), dh);       // [T × dh]
            if (group.QueryBias is not null) AddBias(q, Doubles(group.QueryBias));
            if (group.KeyBias is not null) AddBias(k, Doubles(group.KeyBias));
            if (group.ValueBias is not null) AddBias(v, Doubles(group.ValueBias));
            var z = new double[tokens * g * dh];                               // [T × g·dh]
            for (int j = 0; j < g; j++)
                Place(Attend(Columns(q, g * dh, j * dh, dh), k, v, tokens, dh, window), z, g * dh, j * dh, dh);
            double[] part = MatMul(z, tokens, g * dh, Doubles(group.Output), d);
            for (int i = 0; i < y.Length; i++)
                y[i] += part[i];
        }
        if (layer.OutputBias is not null)
            AddBias(y, Doubles(layer.OutputBias));
        return y;
    }

    /// <summary>softmax(Q·Kᵀ/√dh + causal/window mask)·V for one head; q, k, v: [T × dh].</summary>
    private static double[] Attend(double[] q, double[] k, double[] v, int tokens, int dh, int window)
    {
        var z = new double[tokens * dh];
        var scores = new double[tokens];
        double scale = 1 / Math.Sqrt(dh);
        for (int i = 0; i < tokens; i++)
        {
            int first = window > 0 ? Math.Max(0, i - window + 1) : 0;
            double max = double.NegativeInfinity;
            for (int j = first; j <= i; j++)
            {
                double s = 0;
                for (int c = 0; c < dh; c++)
                    s += q[i * dh + c] * k[j * dh + c];
                scores[j] = s * scale;
                max = Math.Max(max, scores[j]);
            }
            double sum = 0;
            for (int j = first; j <= i; j++)
                sum += scores[j] = Math.Exp(scores[j] - max);
            for (int j = first; j <= i; j++)
                for (int c = 0; c < dh; c++)
                    z[i * dh + c] += scores[j] / sum * v[j * dh + c];
        }
        return z;
    }

    // a: [n × k], b: [k × m] → [n × m]
    private static double[] MatMul(double[] a, int n, int k, double[] b, int m)
    {
        var c = new double[n * m];
        for (int i = 0; i < n; i++)
            for (int p = 0; p < k; p++)
            {
                double aip = a[i * k + p];
                for (int j = 0; j < m; j++)
                    c[i * m + j] += aip * b[p * m + j];
            }
        return c;
    }

    // a: [n × k], b: [m × k] → a·bᵀ: [n × m]
    private static double[] MatMulTransposed(double[] a, int n, int k, double[] b, int m)
    {
        var c = new double[n * m];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += a[i * k + p] * b[j * k + p];
                c[i * m + j] = s;
            }
        return c;
    }

    // a: [n × cols] → columns c0 .. c0+width: [n × width]
    private static double[] Columns(double[] a, int cols, int c0, int width)
    {
        int n = a.Length / cols;
        var block = new double[n * width];
        for (int i = 0; i < n; i++)
            Array.Copy(a, i * cols + c0, block, i * width, width);
        return block;
    }

    // block: [n × width] → target columns c0 .. c0+width of target [n × cols]
    private static void Place(double[] block, double[] target, int cols, int c0, int width)
    {
        int n = block.Length / width;
        for (int i = 0; i < n; i++)
            Array.Copy(block, i * width, target, i * cols + c0, width);
    }

    private static void AddBias(double[] rows, double[] bias)
    {
        for (int i = 0; i < rows.Length; i++)
            rows[i] += bias[i % bias.Length];
    }

    private static double[] Doubles(byte[] floats) => FloatBytes.ToFloats(floats).Select(v => (double)v).ToArray();

    /// <summary>Asserts the README's tolerance: max abs error ≤ 1e-4 and relative Frobenius error ≤ 1e-5.</summary>
    public static void AssertClose(ReadOnlySpan<float> expected, double[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxAbs = 0, diff2 = 0, ref2 = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double e = actual[i] - expected[i];
            maxAbs = Math.Max(maxAbs, Math.Abs(e));
            diff2 += e * e;
            ref2 += (double)expected[i] * expected[i];
        }
        double relative = Math.Sqrt(diff2 / ref2);
        Assert.True(maxAbs <= 1e-4 && relative <= 1e-5, $"{what}: max abs {maxAbs:E2}, rel Frobenius {relative:E2}");
    }
}
