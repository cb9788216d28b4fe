namespace Headwise.Kernels.Tests;

/// <summary>
/// The decode path over the transposed K/V cache against a float64 oracle written here: Q, K, V = x·W + b, and for
/// the token at position i and query head h, z = softmax(scale · q·Kᵀ) · V over the keys at positions
/// max(0, i − window + 1) … i (every key when the window is 0), head h using the group's one K and V.
/// The bound: max abs error ≤ 1e-5 × the largest |z| of the oracle.
/// </summary>
public sealed class DecodeAttentionTests
{
    private const double Tolerance = 1e-5;

    public static TheoryData<int, int, int> Cases => new()
    {
        // g, window, chunk. 300 tokens without a window grow the cache 16 → 512 rows; windows of 5 and 40 trim
        // it many times (300 ≫ 2·window), and 40 also grows it across doublings between the trims.
        { 1, 0, 1 }, { 1, 0, 3 }, { 1, 0, 7 },
        { 3, 0, 1 }, { 3, 0, 3 }, { 3, 0, 7 },
        { 1, 5, 1 }, { 1, 5, 3 }, { 1, 5, 7 },
        { 3, 5, 1 }, { 3, 5, 3 }, { 3, 5, 7 },
        { 1, 40, 7 }, { 3, 40, 1 }, { 3, 40, 3 },
        // Chunks of at least IncrementalAttention.FusedPrefillTokens: the first goes into the empty cache through the
        // kernel's fused attention, the later ones over the cache.
        { 1, 0, 40 }, { 3, 0, 40 }, { 3, 5, 40 }, { 1, 40, 100 },
    };

    /// <summary>
    /// Head widths around the cache walk's block of 8 rows (a partial block alone, a block and a rest, GPT-2's 64) at
    /// context lengths that leave a rest after every vector width: one-token steps, as a decode session sends them.
    /// </summary>
    [Theory]
    [InlineData(3, 2, 37)]
    [InlineData(12, 1, 53)]
    [InlineData(64, 2, 131)]
    public void One_token_steps_at_head_widths_around_the_block_match_the_float64_oracle(int headDim, int queryHeads, int tokens)
    {
        const int modelDim = 16;
        var random = new Random(headDim * 100 + tokens);
        var shape = new HeadGroupShape(modelDim, headDim, queryHeads);
        var weights = RandomTensors.GroupWeights(random, shape, 0.5, bias: true);
        var x = RandomTensors.Normal(random, tokens * modelDim);
        var options = new AttentionOptions(1f / MathF.Sqrt(headDim), Causal: true, 0);

        var cache = new KeyValueCache(headDim);
        var actual = new float[tokens * shape.QueryWidth];
        for (int start = 0; start < tokens; start++)
            IncrementalAttention.Decode(new SimdKernel(), weights, options, Rotary.None, x.AsSpan(start * modelDim, modelDim), 1,
                cache, actual.AsSpan(start * shape.QueryWidth, shape.QueryWidth));

        var q = Project(x, tokens, modelDim, weights.Query, weights.QueryBias!, shape.QueryWidth);
        var k = Project(x, tokens, modelDim, weights.Key, weights.KeyBias!, headDim);
        var v = Project(x, tokens, modelDim, weights.Value, weights.ValueBias!, headDim);
        var expected = Attention(q, k, v, tokens, headDim, queryHeads, options.Scale, 0);
        double bound = Tolerance * expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= bound,
                $"dh={headDim} g={queryHeads}: z[{i / shape.QueryWidth}, {i % shape.QueryWidth}] is {actual[i]}, expected {expected[i]}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decode_matches_the_float64_oracle(int queryHeads, int window, int chunk)
    {
        const int tokens = 300, modelDim = 16, headDim = 8;
        var random = new Random(queryHeads * 1000 + window * 10 + chunk);
        var shape = new HeadGroupShape(modelDim, headDim, queryHeads);
        var weights = RandomTensors.GroupWeights(random, shape, 0.5, bias: true);
        var x = RandomTensors.Normal(random, tokens * modelDim);
        var options = new AttentionOptions(1f / MathF.Sqrt(headDim), Causal: true, window);

        var cache = new KeyValueCache(headDim);
        var actual = new float[tokens * shape.QueryWidth];
        for (int start = 0; start < tokens; start += chunk)
        {
            int count = Math.Min(chunk, tokens - start);
            IncrementalAttention.Decode(new SimdKernel(), weights, options, Rotary.None, x.AsSpan(start * modelDim, count * modelDim), count,
                cache, actual.AsSpan(start * shape.QueryWidth, count * shape.QueryWidth));
        }

        var q = Project(x, tokens, modelDim, weights.Query, weights.QueryBias!, shape.QueryWidth);
        var k = Project(x, tokens, modelDim, weights.Key, weights.KeyBias!, headDim);
        var v = Project(x, tokens, modelDim, weights.Value, weights.ValueBias!, headDim);
        var expected = Attention(q, k, v, tokens, headDim, queryHeads, options.Scale, window);
        double bound = Tolerance * expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= bound,
                $"g={queryHeads} window={window} chunk={chunk}: z[{i / shape.QueryWidth}, {i % shape.QueryWidth}] is {actual[i]}, expected {expected[i]}");

        // The tiles hold exactly the keys and values of the positions the cache still keeps.
        Assert.Equal(tokens, cache.Position);
        if (window > 0) Assert.True(cache.FirstPosition > 0 && cache.Count <= window - 1 + Math.Max(window, 16) + chunk);
        for (int d = 0; d < headDim; d++)
        {
            for (int row = 0; row < cache.Count; row++)
            {
                int position = cache.FirstPosition + row;
                Assert.True(Math.Abs(cache.Key(row, d) - k[position * headDim + d]) <= 1e-5, $"K[{position}, {d}]");
                Assert.True(Math.Abs(cache.Value(row, d) - v[position * headDim + d]) <= 1e-5, $"V[{position}, {d}]");
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void A_refill_from_the_first_kept_position_gives_the_same_new_rows(int queryHeads)
    {
        // What a session does for a head that lost its cache under a window: a new cache starting at the first input
        // it kept (window − 1 back), filled with every kept input and this step's in one step.
        const int tokens = 300, modelDim = 16, headDim = 8, window = 5, lost = 200;
        var random = new Random(queryHeads);
        var shape = new HeadGroupShape(modelDim, headDim, queryHeads);
        var weights = RandomTensors.GroupWeights(random, shape, 0.5, bias: true);
        var x = RandomTensors.Normal(random, tokens * modelDim);
        var options = new AttentionOptions(1f / MathF.Sqrt(headDim), Causal: true, window);
        int kept = lost - (window - 1);
        var cache = new KeyValueCache(headDim, firstPosition: kept);
        var z = new float[(tokens - kept) * shape.QueryWidth];
        IncrementalAttention.Decode(new SimdKernel(), weights, options, Rotary.None, x.AsSpan(kept * modelDim), tokens - kept, cache, z);

        var q = Project(x, tokens, modelDim, weights.Query, weights.QueryBias!, shape.QueryWidth);
        var k = Project(x, tokens, modelDim, weights.Key, weights.KeyBias!, headDim);
        var v = Project(x, tokens, modelDim, weights.Value, weights.ValueBias!, headDim);
        var expected = Attention(q, k, v, tokens, headDim, queryHeads, options.Scale, window);
        double bound = Tolerance * expected.Max(Math.Abs);
        for (int position = lost; position < tokens; position++)
            for (int c = 0; c < shape.QueryWidth; c++)
            {
                float actual = z[(position - kept) * shape.QueryWidth + c];
                double wanted = expected[position * shape.QueryWidth + c];
                Assert.True(Math.Abs(actual - wanted) <= bound, $"z[{position}, {c}] is {actual}, expected {wanted}");
            }
        Assert.Equal(tokens, cache.Position);
    }

    [Fact]
    public void Appending_across_growth_and_trimming_keeps_every_row()
    {
        const int headDim = 3, window = 20;
        var cache = new KeyValueCache(headDim, firstPosition: 7);
        var random = new Random(5);
        var keys = RandomTensors.Normal(random, 500 * headDim);
        var values = RandomTensors.Normal(random, 500 * headDim);
        int appended = 0;
        for (int chunk = 1; appended + chunk <= 500; chunk = chunk % 9 + 1)
        {
            cache.Append(keys.AsSpan(appended * headDim, chunk * headDim), values.AsSpan(appended * headDim, chunk * headDim), chunk);
            appended += chunk;
            if (appended < 200) continue; // grow through several doublings first, then trim
            cache.TrimToWindow(window);
            Assert.True(cache.Count >= window - 1);
        }
        Assert.Equal(7 + appended, cache.Position);
        for (int d = 0; d < headDim; d++)
        {
            for (int row = 0; row < cache.Count; row++)
            {
                int token = cache.FirstPosition - 7 + row;
                Assert.Equal(keys[token * headDim + d], cache.Key(row, d));
                Assert.Equal(values[token * headDim + d], cache.Value(row, d));
            }
        }
    }

    private static double[] Project(float[] x, int tokens, int inner, float[] w, float[] b, int outer)
    {
        var y = new double[tokens * outer];
        for (int t = 0; t < tokens; t++)
            for (int o = 0; o < outer; o++)
            {
                double sum = b[o];
                for (int i = 0; i < inner; i++) sum += (double)x[t * inner + i] * w[i * outer + o];
                y[t * outer + o] = sum;
            }
        return y;
    }

    private static double[] Attention(double[] q, double[] k, double[] v, int tokens, int headDim, int queryHeads, double scale, int window)
    {
        int width = queryHeads * headDim;
        var z = new double[tokens * width];
        var weights = new double[tokens];
        for (int i = 0; i < tokens; i++)
            for (int h = 0; h < queryHeads; h++)
            {
                int first = window > 0 ? Math.Max(0, i - window + 1) : 0;
                double max = double.NegativeInfinity;
                for (int j = first; j <= i; j++)
                {
                    double score = 0;
                    for (int d = 0; d < headDim; d++) score += q[i * width + h * headDim + d] * k[j * headDim + d];
                    weights[j] = score * scale;
                    max = Math.Max(max, weights[j]);
                }
                double sum = 0;
                for (int j = first; j <= i; j++) sum += weights[j] = Math.Exp(weights[j] - max);
                for (int j = first; j <= i; j++)
                    for (int d = 0; d < headDim; d++)
                        z[i * width + h * headDim + d] += weights[j] / sum * v[j * headDim + d];
            }
        return z;
    }
}
