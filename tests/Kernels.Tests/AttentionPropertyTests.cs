namespace Headwise.Kernels.Tests;

/// <summary>Properties every kernel must have, whatever its arithmetic: they hold for the reference by construction.</summary>
public class AttentionPropertyTests
{
    private static (float[] Z, float[] Attention) Run(IHeadKernel kernel, float[] input, int batch, int tokens, int[] lengths,
        HeadGroupWeights weights, AttentionOptions options)
    {
        var z = new float[batch * tokens * weights.Shape.QueryWidth];
        var attention = new float[batch * weights.Shape.QueryHeads * tokens * tokens];
        z.AsSpan().Fill(float.NaN);
        attention.AsSpan().Fill(float.NaN);
        kernel.Attend(input, batch, tokens, lengths, weights, options, z, attention);
        return (z, attention);
    }

    [Theory]
    [InlineData(KernelKind.Reference, false, 0)]
    [InlineData(KernelKind.Reference, true, 3)]
    [InlineData(KernelKind.Simd, false, 0)]
    [InlineData(KernelKind.Simd, true, 0)]
    [InlineData(KernelKind.Simd, true, 3)]
    [InlineData(KernelKind.Simd, false, 4)]
    [InlineData(KernelKind.Gpu, true, 3)]
    public void Rows_sum_to_one_and_masked_keys_weigh_exactly_zero(KernelKind kind, bool causal, int window)
    {
        const int batch = 3, tokens = 13;
        int[] lengths = [13, 6, 1];
        var random = new Random(21);
        var shape = new HeadGroupShape(ModelDim: 24, HeadDim: 8, QueryHeads: 2);
        var weights = RandomTensors.GroupWeights(random, shape, 0.1, bias: true);
        var input = RandomTensors.Normal(random, batch * tokens * shape.ModelDim);
        var options = new AttentionOptions(0.35f, causal, window);

        var (_, attention) = Run(TestKernels.Create(kind), input, batch, tokens, lengths, weights, options);

        for (int b = 0; b < batch; b++)
            for (int h = 0; h < shape.QueryHeads; h++)
                for (int i = 0; i < tokens; i++)
                {
                    var row = attention.AsSpan(((b * shape.QueryHeads + h) * tokens + i) * tokens, tokens);
                    double sum = 0;
                    bool anyVisible = false;
                    for (int j = 0; j < tokens; j++)
                    {
                        if (options.IsVisible(i, j, lengths[b])) { anyVisible = true; sum += row[j]; }
                        else Assert.Equal(0f, row[j]); // exactly, not merely small
                    }
                    Assert.Equal(anyVisible ? 1.0 : 0.0, sum, 1e-5);
                }
    }

    [Theory]
    [InlineData(KernelKind.Reference)]
    [InlineData(KernelKind.Simd)]
    [InlineData(KernelKind.Gpu)]
    public void Fully_masked_rows_give_zeros_and_no_nan(KernelKind kind)
    {
        // Causal with a window of 2 and 3 valid tokens: query i sees keys i−1 and i, so every query
        // from 4 on sees only padding. The second sequence has length 0: nothing is visible at all.
        const int batch = 2, tokens = 9;
        int[] lengths = [3, 0];
        var random = new Random(22);
        var shape = new HeadGroupShape(ModelDim: 12, HeadDim: 5, QueryHeads: 2);
        var weights = RandomTensors.GroupWeights(random, shape, 0.1, bias: true);
        var input = RandomTensors.Normal(random, batch * tokens * shape.ModelDim);
        var options = new AttentionOptions(0.4f, Causal: true, Window: 2);

        var (z, attention) = Run(TestKernels.Create(kind), input, batch, tokens, lengths, weights, options);

        Assert.DoesNotContain(z, float.IsNaN);
        Assert.DoesNotContain(attention, float.IsNaN);
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < tokens; i++)
            {
                bool masked = Enumerable.Range(0, tokens).All(j => !options.IsVisible(i, j, lengths[b]));
                Assert.Equal(masked, b == 1 || i >= 4);
                var zRow = z.AsSpan((b * tokens + i) * shape.QueryWidth, shape.QueryWidth);
                if (masked) Assert.All(zRow.ToArray(), value => Assert.Equal(0f, value));
                else Assert.Contains(zRow.ToArray(), value => value != 0f);
                for (int h = 0; h < shape.QueryHeads; h++)
                {
                    var row = attention.AsSpan(((b * shape.QueryHeads + h) * tokens + i) * tokens, tokens).ToArray();
                    if (masked) Assert.All(row, value => Assert.Equal(0f, value));
                }
            }
    }

    [Theory]
    [InlineData(KernelKind.Reference, 8)]
    [InlineData(KernelKind.Simd, 8)]
    [InlineData(KernelKind.Simd, 17)]
    public void Permuting_heads_in_the_query_weights_permutes_the_blocks_of_z(KernelKind kind, int headDim)
    {
        const int batch = 2, tokens = 11, groupSize = 4, modelDim = 20;
        int[] permutation = [2, 0, 3, 1]; // new head k is old head permutation[k]
        var random = new Random(23);
        var shape = new HeadGroupShape(modelDim, headDim, groupSize);
        var weights = RandomTensors.GroupWeights(random, shape, 0.1, bias: true);
        var input = RandomTensors.Normal(random, batch * tokens * modelDim);
        var options = new AttentionOptions(1 / MathF.Sqrt(headDim), Causal: true, Window: 0);

        var permutedQuery = new float[weights.Query.Length];
        var permutedBias = new float[shape.QueryWidth];
        for (int k = 0; k < groupSize; k++)
        {
            for (int row = 0; row < modelDim; row++)
                weights.Query.AsSpan(row * shape.QueryWidth + permutation[k] * headDim, headDim)
                    .CopyTo(permutedQuery.AsSpan(row * shape.QueryWidth + k * headDim));
            weights.QueryBias.AsSpan(permutation[k] * headDim, headDim).CopyTo(permutedBias.AsSpan(k * headDim));
        }
        var permuted = new HeadGroupWeights(shape, permutedQuery, weights.Key, weights.Value, permutedBias, weights.KeyBias, weights.ValueBias);

        var kernel = TestKernels.Create(kind);
        var (z, attention) = Run(kernel, input, batch, tokens, [], weights, options);
        var (permutedZ, permutedAttention) = Run(kernel, input, batch, tokens, [], permuted, options);

        var expectedZ = new float[z.Length];
        var expectedAttention = new float[attention.Length];
        for (int b = 0; b < batch; b++)
            for (int k = 0; k < groupSize; k++)
            {
                for (int i = 0; i < tokens; i++)
                    z.AsSpan((b * tokens + i) * shape.QueryWidth + permutation[k] * headDim, headDim)
                        .CopyTo(expectedZ.AsSpan((b * tokens + i) * shape.QueryWidth + k * headDim));
                attention.AsSpan((b * groupSize + permutation[k]) * tokens * tokens, tokens * tokens)
                    .CopyTo(expectedAttention.AsSpan((b * groupSize + k) * tokens * tokens));
            }
        // The same arithmetic moves with the head, up to a vector/scalar boundary shifting by a column block.
        TensorAssert.Close(expectedZ, permutedZ, "permuted Z", maxAbsError: 1e-6, relativeFrobeniusError: 1e-6);
        TensorAssert.Close(expectedAttention, permutedAttention, "permuted attention", maxAbsError: 1e-6, relativeFrobeniusError: 1e-6);
    }

    [Theory]
    [InlineData(KernelKind.Reference)]
    [InlineData(KernelKind.Simd)]
    public void Sequences_of_a_batch_do_not_mix(KernelKind kind)
    {
        const int batch = 3, tokens = 10;
        int[] lengths = [10, 4, 7];
        var random = new Random(24);
        var shape = new HeadGroupShape(ModelDim: 16, HeadDim: 4, QueryHeads: 2);
        var weights = RandomTensors.GroupWeights(random, shape, 0.1, bias: false);
        var input = RandomTensors.Normal(random, batch * tokens * shape.ModelDim);
        var options = new AttentionOptions(0.5f, Causal: false, Window: 0);
        var kernel = TestKernels.Create(kind);

        var (z, _) = Run(kernel, input, batch, tokens, lengths, weights, options);

        for (int b = 0; b < batch; b++)
        {
            var single = input.AsSpan(b * tokens * shape.ModelDim, tokens * shape.ModelDim).ToArray();
            var (alone, _) = Run(kernel, single, 1, tokens, [lengths[b]], weights, options);
            Assert.Equal(alone, z.AsSpan(b * tokens * shape.QueryWidth, tokens * shape.QueryWidth).ToArray());
        }
    }

    [Fact]
    public void Visible_key_range_agrees_with_is_visible()
    {
        foreach (bool causal in new[] { false, true })
            foreach (int window in new[] { 0, 1, 2, 5, 40 })
                foreach (int length in new[] { -1, 0, 1, 4, 12 })
                {
                    var options = new AttentionOptions(1f, causal, window);
                    for (int query = 0; query < 12; query++)
                    {
                        var (start, end) = options.VisibleKeyRange(query, length);
                        Assert.True(start <= end);
                        for (int key = 0; key < 12; key++)
                            Assert.Equal(options.IsVisible(query, key, length), key >= start && key < end);
                    }
                }
    }
}
