namespace Headwise.Kernels.Tests;

/// <summary>
/// The oracle checked on its own: tiny cases whose answers are written out by hand, and a random case
/// against <see cref="NaiveMath"/>'s matrix formulation. Everything else trusts the reference only
/// because these pass (and because it matches the libtorch golden vectors).
/// </summary>
public class ReferenceKernelTests
{
    // D = 2, dh = 1, T = 2. W_Q picks x[:,0], W_K picks x[:,1], W_V sums both columns.
    // x = [[1, 2], [3, −1]]  ⇒  q = [1, 3], k = [2, −1], v = [3, 2].
    private static readonly float[] Input = [1, 2, 3, -1];
    private static readonly HeadGroupShape OneHead = new(ModelDim: 2, HeadDim: 1, QueryHeads: 1);
    private const float Scale = 0.5f;

    private static HeadGroupWeights OneHeadWeights(bool bias = false) => new(OneHead,
        query: [1, 0], key: [0, 1], value: [1, 1],
        queryBias: bias ? [0.5f] : null, keyBias: bias ? [-1f] : null, valueBias: bias ? [10f] : null);

    /// <summary>softmax([a, b])·[v0, v1] and the two probabilities.</summary>
    private static (double Z, double P0, double P1) TwoKeys(double a, double b, double v0, double v1)
    {
        double p0 = Math.Exp(a) / (Math.Exp(a) + Math.Exp(b));
        double p1 = 1 - p0;
        return (p0 * v0 + p1 * v1, p0, p1);
    }

    private static void AssertClose(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            AssertNear(expected[i], actual[i]);
    }

    /// <summary>Within float32 rounding of a float64 value: about 6e-8 relative, allowed 1e-6.</summary>
    private static void AssertNear(double expected, double actual) =>
        Assert.Equal(expected, actual, 1e-6 * Math.Max(1, Math.Abs(expected)));

    private static (float[] Z, float[] Attention) Run(HeadGroupWeights weights, AttentionOptions options, int[] lengths)
    {
        var z = new float[2 * weights.Shape.QueryWidth];
        var attention = new float[weights.Shape.QueryHeads * 4];
        new ReferenceKernel().Attend(Input, 1, 2, lengths, weights, options, z, attention);
        return (z, attention);
    }

    [Fact]
    public void Full_attention_matches_the_hand_computed_softmax()
    {
        var (z, attention) = Run(OneHeadWeights(), new AttentionOptions(Scale, Causal: false, Window: 0), []);

        // Query 0: scores 0.5·1·[2, −1] = [1, −0.5]. Query 1: 0.5·3·[2, −1] = [3, −1.5].
        var row0 = TwoKeys(1, -0.5, 3, 2);
        var row1 = TwoKeys(3, -1.5, 3, 2);
        AssertNear(row0.Z, z[0]);
        AssertNear(row1.Z, z[1]);
        AssertClose([row0.P0, row0.P1, row1.P0, row1.P1], attention);
    }

    [Fact]
    public void Causal_first_query_sees_only_itself()
    {
        var (z, attention) = Run(OneHeadWeights(), new AttentionOptions(Scale, Causal: true, Window: 0), []);

        var row1 = TwoKeys(3, -1.5, 3, 2);
        Assert.Equal(3f, z[0]);
        AssertNear(row1.Z, z[1]);
        AssertClose([1, 0, row1.P0, row1.P1], attention);
    }

    [Fact]
    public void Padding_masks_keys_at_or_past_the_length()
    {
        // Length 1: both queries see key 0 only, so both get v0 = 3.
        var (z, attention) = Run(OneHeadWeights(), new AttentionOptions(Scale, Causal: false, Window: 0), [1]);

        Assert.Equal(new float[] { 3f, 3f }, z);
        Assert.Equal(new float[] { 1f, 0f, 1f, 0f }, attention);
    }

    [Fact]
    public void Window_of_one_gives_each_query_its_own_value()
    {
        var (z, attention) = Run(OneHeadWeights(), new AttentionOptions(Scale, Causal: true, Window: 1), []);

        Assert.Equal(new float[] { 3f, 2f }, z);
        Assert.Equal(new float[] { 1f, 0f, 0f, 1f }, attention);
    }

    [Fact]
    public void Query_with_no_visible_key_gives_zeros()
    {
        // Causal, window 1, length 1: query 1 may see only key 1, which is padding.
        var (z, attention) = Run(OneHeadWeights(), new AttentionOptions(Scale, Causal: true, Window: 1), [1]);

        Assert.Equal(new float[] { 3f, 0f }, z);
        Assert.Equal(new float[] { 1f, 0f, 0f, 0f }, attention);
    }

    [Fact]
    public void Biases_are_added_to_q_k_and_v()
    {
        var (z, _) = Run(OneHeadWeights(bias: true), new AttentionOptions(Scale, Causal: false, Window: 0), []);

        // q = [1.5, 3.5], k = [1, −2], v = [13, 12].
        var row0 = TwoKeys(0.5 * 1.5 * 1, 0.5 * 1.5 * -2, 13, 12);
        var row1 = TwoKeys(0.5 * 3.5 * 1, 0.5 * 3.5 * -2, 13, 12);
        AssertNear(row0.Z, z[0]);
        AssertNear(row1.Z, z[1]);
    }

    [Fact]
    public void Two_query_heads_share_k_and_v_and_own_their_column_blocks()
    {
        // Head 0 reads q = x[:,0] = [1, 3]; head 1 reads q = x[:,1] = [2, −1]; both use k = [2, −1], v = [3, 2].
        var shape = new HeadGroupShape(ModelDim: 2, HeadDim: 1, QueryHeads: 2);
        var weights = new HeadGroupWeights(shape, query: [1, 0, 0, 1], key: [0, 1], value: [1, 1]);
        var (z, attention) = Run(weights, new AttentionOptions(Scale, Causal: false, Window: 0), []);

        var head1Row0 = TwoKeys(0.5 * 2 * 2, 0.5 * 2 * -1, 3, 2);
        var head1Row1 = TwoKeys(0.5 * -1 * 2, 0.5 * -1 * -1, 3, 2);
        // z: [tokens, g·dh] = [[head0, head1] of query 0, [head0, head1] of query 1]
        AssertNear(TwoKeys(1, -0.5, 3, 2).Z, z[0]);
        AssertNear(head1Row0.Z, z[1]);
        AssertNear(TwoKeys(3, -1.5, 3, 2).Z, z[2]);
        AssertNear(head1Row1.Z, z[3]);
        // attention: [g, tokens, tokens], head 1 second
        AssertClose([head1Row0.P0, head1Row0.P1, head1Row1.P0, head1Row1.P1], attention[4..]);
    }

    [Fact]
    public void Project_matches_a_hand_computed_product()
    {
        // [[1, 2], [3, 4]] · [[1, 0, 2], [0, 1, −1]] + [0.5, 0, 0] = [[1.5, 2, 0], [3.5, 4, 2]]
        var y = new float[6];
        new ReferenceKernel().Project([1, 2, 3, 4], 2, 2, [1, 0, 2, 0, 1, -1], 3, [0.5f, 0, 0], y);
        Assert.Equal(new float[] { 1.5f, 2, 0, 3.5f, 4, 2 }, y);
    }

    [Theory]
    [InlineData(11, false, 0, new[] { 5, 5 })]
    [InlineData(12, true, 0, new[] { 5, 3 })]
    [InlineData(13, true, 2, new[] { 4, 1 })]
    [InlineData(14, false, 3, new[] { 2, 5 })]
    public void Matches_the_matrix_formula_with_an_infinite_mask(int seed, bool causal, int window, int[] lengths)
    {
        const int tokens = 5, batch = 2;
        var random = new Random(seed);
        var shape = new HeadGroupShape(ModelDim: 7, HeadDim: 3, QueryHeads: 2);
        var weights = RandomTensors.GroupWeights(random, shape, std: 0.3, bias: true);
        var input = RandomTensors.Normal(random, batch * tokens * shape.ModelDim);
        var options = new AttentionOptions(1 / MathF.Sqrt(shape.HeadDim), causal, window);
        var z = new float[batch * tokens * shape.QueryWidth];
        var attention = new float[batch * shape.QueryHeads * tokens * tokens];

        new ReferenceKernel().Attend(input, batch, tokens, lengths, weights, options, z, attention);

        for (int b = 0; b < batch; b++)
        {
            var x = input.AsSpan(b * tokens * shape.ModelDim, tokens * shape.ModelDim).ToArray();
            var (expectedZ, expectedAttention) = NaiveMath.Attention(x, tokens, weights, options.Scale, causal, window, lengths[b]);
            for (int i = 0; i < tokens; i++)
                for (int c = 0; c < shape.QueryWidth; c++)
                    AssertNear(expectedZ[i, c], z[(b * tokens + i) * shape.QueryWidth + c]);
            for (int h = 0; h < shape.QueryHeads; h++)
                for (int i = 0; i < tokens; i++)
                    for (int j = 0; j < tokens; j++)
                        AssertNear(expectedAttention[h, i, j], attention[((b * shape.QueryHeads + h) * tokens + i) * tokens + j]);
        }
    }
}
