namespace Headwise.Kernels.Tests;

/// <summary>
/// RoPE and the incremental (decode) path. The oracle is written here from the Hugging Face definition
/// (transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb): inv_freq_i = θ^(−2i/d), emb = cat(freqs, freqs),
/// q' = q·cos + rotate_half(q)·sin with rotate_half(x) = cat(−x2, x1), on the first d dims of each head; the rest
/// pass through. Everything in float64, whole matrices, additive −∞ mask.
/// </summary>
public sealed class RotaryTests
{
    private static readonly IHeadKernel[] Kernels = [new ReferenceKernel(), new SimdKernel()];

    /// <summary>HF apply_rotary_pos_emb on one head vector at position <paramref name="position"/>.</summary>
    private static double[] HfRotate(double[] x, int position, double theta, int rotaryDim)
    {
        int half = rotaryDim / 2;
        var cos = new double[rotaryDim];
        var sin = new double[rotaryDim];
        for (int i = 0; i < half; i++)
        {
            double invFreq = 1.0 / Math.Pow(theta, 2.0 * i / rotaryDim); // torch.arange(0, dim, 2) / dim
            double angle = position * invFreq;
            cos[i] = cos[i + half] = Math.Cos(angle);                  // emb = torch.cat((freqs, freqs), dim=-1)
            sin[i] = sin[i + half] = Math.Sin(angle);
        }
        var rotateHalf = new double[rotaryDim];
        for (int i = 0; i < half; i++)
        {
            rotateHalf[i] = -x[i + half];
            rotateHalf[i + half] = x[i];
        }
        var y = (double[])x.Clone();
        for (int i = 0; i < rotaryDim; i++)
            y[i] = x[i] * cos[i] + rotateHalf[i] * sin[i];
        return y;
    }

    /// <summary>Z [tokens, g·dh] of one sequence with RoPE on Q and K at positions 0…tokens−1.</summary>
    private static double[,] HfAttention(float[] x, int tokens, HeadGroupWeights weights, double scale, bool causal, int window,
        int length, double theta, int rotaryDim)
    {
        var shape = weights.Shape;
        int dh = shape.HeadDim;
        var q = NaiveMath.MatMul(x, tokens, shape.ModelDim, weights.Query, shape.QueryWidth, weights.QueryBias);
        var k = NaiveMath.MatMul(x, tokens, shape.ModelDim, weights.Key, dh, weights.KeyBias);
        var v = NaiveMath.MatMul(x, tokens, shape.ModelDim, weights.Value, dh, weights.ValueBias);
        double[] Row(double[,] m, int row, int offset) => Enumerable.Range(0, dh).Select(d => m[row, offset + d]).ToArray();
        var keys = Enumerable.Range(0, tokens).Select(j => HfRotate(Row(k, j, 0), j, theta, rotaryDim)).ToArray();
        var z = new double[tokens, shape.QueryWidth];
        for (int h = 0; h < shape.QueryHeads; h++)
            for (int i = 0; i < tokens; i++)
            {
                var query = HfRotate(Row(q, i, h * dh), i, theta, rotaryDim);
                var s = new double[tokens];
                for (int j = 0; j < tokens; j++)
                {
                    bool masked = (causal && j > i) || (window > 0 && i - j >= window) || j >= length;
                    s[j] = query.Zip(keys[j], (a, b) => a * b).Sum() * scale + (masked ? double.NegativeInfinity : 0);
                }
                double max = s.Max();
                if (double.IsNegativeInfinity(max)) continue;
                double sum = s.Sum(value => Math.Exp(value - max));
                for (int j = 0; j < tokens; j++)
                {
                    double p = Math.Exp(s[j] - max) / sum;
                    for (int d = 0; d < dh; d++) z[i, h * dh + d] += p * v[j, d];
                }
            }
        return z;
    }

    public static TheoryData<int, int, int, bool, int, int, int> Cases => new()
    {
        // headDim, queryHeads, rotaryDim (0 = all), causal, window, tokens, length
        { 16, 1, 0, true, 0, 19, 19 },     // MHA, full rotary
        { 16, 4, 0, true, 0, 23, 23 },     // GQA group of 4
        { 32, 2, 8, false, 0, 17, 13 },    // partial rotary (NeoX/Phi style), bidirectional, padded
        { 8, 3, 0, true, 5, 29, 29 },      // sliding window
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Forward_with_rope_matches_the_hugging_face_definition(int headDim, int queryHeads, int rotaryDim, bool causal,
        int window, int tokens, int length)
    {
        var random = new Random(headDim * 131 + queryHeads * 7 + tokens);
        var shape = new HeadGroupShape(24, headDim, queryHeads);
        var weights = RandomTensors.GroupWeights(random, shape, 0.3, bias: true);
        const int batch = 2;
        var x = RandomTensors.Normal(random, batch * tokens * shape.ModelDim);
        int dim = rotaryDim == 0 ? headDim : rotaryDim;
        var rotary = new Rotary(10000f, dim);
        var options = new AttentionOptions(1f / MathF.Sqrt(headDim), causal, window);
        int[] lengths = [length, tokens];

        var expected = Enumerable.Range(0, batch).Select(b => HfAttention(x.AsSpan(b * tokens * shape.ModelDim, tokens * shape.ModelDim).ToArray(),
            tokens, weights, options.Scale, causal, window, lengths[b], 10000, dim).Cast<double>().Select(v => (float)v).ToArray()).ToArray();
        foreach (var kernel in Kernels)
        {
            // The projections + rotary + incremental path (what a kernel without RoPE of its own takes) …
            var z = new float[batch * tokens * shape.QueryWidth];
            IncrementalAttention.Forward(kernel, x, batch, tokens, lengths, weights, options, rotary, z, Span<float>.Empty);
            // … and the kernel's own Attend with RoPE in its options (the fused SIMD attention).
            Assert.True(kernel.SupportsRotary);
            var fused = new float[batch * tokens * shape.QueryWidth];
            kernel.Attend(x, batch, tokens, lengths, weights, options with { Rotary = rotary }, fused, []);
            for (int b = 0; b < batch; b++)
            {
                TensorAssert.Close(expected[b], z.AsSpan(b * tokens * shape.QueryWidth, tokens * shape.QueryWidth), $"{kernel.Name} incremental, sequence {b}");
                TensorAssert.Close(expected[b], fused.AsSpan(b * tokens * shape.QueryWidth, tokens * shape.QueryWidth), $"{kernel.Name} Attend, sequence {b}");
            }
        }
    }

    [Fact]
    public void Rotation_keeps_norms_is_identity_at_position_zero_and_makes_scores_depend_on_distance()
    {
        var random = new Random(5);
        var rotary = new Rotary(500f, 16);
        var q = RandomTensors.Normal(random, 16);
        var k = RandomTensors.Normal(random, 16);
        float[] At(float[] v, int position) { var c = (float[])v.Clone(); rotary.Apply(c, 1, 1, 16, position); return c; }
        double Dot(float[] a, float[] b) => a.Zip(b, (x, y) => (double)x * y).Sum();

        Assert.Equal(q, At(q, 0));
        Assert.Equal(Math.Sqrt(Dot(q, q)), Math.Sqrt(Dot(At(q, 37), At(q, 37))), 4);
        // q(m)·k(n) depends on m − n only: the property RoPE exists for.
        Assert.Equal(Dot(At(q, 10), At(k, 3)), Dot(At(q, 1007), At(k, 1000)), 3);
    }

    [Fact]
    public void Positions_past_the_first_table_and_after_it_grows_match_the_definition()
    {
        // The cos/sin table starts at 1024 positions and doubles: positions on both sides of each growth, asked in an
        // order that grows it more than once, rotate as the float64 definition says.
        var random = new Random(11);
        var rotary = new Rotary(777f, 12);
        var x = RandomTensors.Normal(random, 16);
        foreach (int position in new[] { 3, 1023, 1024, 5000, 2047, 40000, 0 })
        {
            var actual = (float[])x.Clone();
            rotary.Apply(actual, 1, 1, 16, position);
            var expected = HfRotate(x.Select(v => (double)v).ToArray(), position, 777, 12);
            for (int d = 0; d < 16; d++)
                Assert.True(Math.Abs(actual[d] - expected[d]) <= 1e-5, $"position {position}, dim {d}: {actual[d]} against {expected[d]}");
        }
    }

    public static TheoryData<int, int, float, int> DecodeCases => new()
    {
        // queryHeads, window, ropeTheta (0 = none), chunk
        { 1, 0, 0f, 1 }, { 1, 0, 10000f, 3 }, { 4, 0, 0f, 7 }, { 4, 0, 10000f, 1 },
        { 2, 6, 0f, 3 }, { 2, 6, 10000f, 1 }, { 2, 6, 10000f, 7 },
        // A first chunk of at least IncrementalAttention.FusedPrefillTokens goes through the kernel's fused attention.
        { 2, 6, 10000f, 20 }, { 4, 0, 10000f, 45 }, { 1, 0, 0f, 16 },
    };

    [Theory]
    [MemberData(nameof(DecodeCases))]
    public void Decoding_in_chunks_equals_one_causal_forward(int queryHeads, int window, float ropeTheta, int chunk)
    {
        var random = new Random(queryHeads * 10 + window + chunk);
        var shape = new HeadGroupShape(32, 8, queryHeads);
        var weights = RandomTensors.GroupWeights(random, shape, 0.3, bias: true);
        const int tokens = 45;
        var x = RandomTensors.Normal(random, tokens * shape.ModelDim);
        var options = new AttentionOptions(1f / MathF.Sqrt(8), Causal: true, window);
        var rotary = ropeTheta > 0 ? new Rotary(ropeTheta, 8) : Rotary.None;

        var kernel = new SimdKernel();
        var expected = new float[tokens * shape.QueryWidth];
        if (rotary.IsEnabled)
            IncrementalAttention.Forward(new ReferenceKernel(), x, 1, tokens, [], weights, options, rotary, expected, Span<float>.Empty);
        else
            new ReferenceKernel().Attend(x, 1, tokens, [], weights, options, expected, Span<float>.Empty);

        var cache = new KeyValueCache(shape.HeadDim);
        var actual = new float[tokens * shape.QueryWidth];
        for (int start = 0; start < tokens; start += chunk)
        {
            int count = Math.Min(chunk, tokens - start);
            IncrementalAttention.Decode(kernel, weights, options, rotary, x.AsSpan(start * shape.ModelDim, count * shape.ModelDim), count,
                cache, actual.AsSpan(start * shape.QueryWidth, count * shape.QueryWidth));
        }
        TensorAssert.Close(expected, actual, $"g={queryHeads} window={window} theta={ropeTheta} chunk={chunk}");
        Assert.Equal(tokens, cache.Position);
        // The cache forgot what the window hides (it compacts once the dead rows reach max(window, 16)).
        if (window > 0) Assert.True(cache.Count <= window - 1 + Math.Max(window, 16) + chunk && cache.FirstPosition > 0,
            $"a window of {window} keeps {cache.Count} rows from position {cache.FirstPosition}");
    }
}
