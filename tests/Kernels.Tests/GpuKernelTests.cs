namespace Headwise.Kernels.Tests;

/// <summary>
/// The GPU kernel against the float64 reference. Without a CUDA device it runs on ILGPU's CPU accelerator,
/// which emulates the device about 1000× slower than the SIMD kernel, so the cases stay tiny; the golden
/// files that fit run in <see cref="GoldenVectorTests"/>. Tolerance as in <see cref="TensorAssert"/>.
/// </summary>
public class GpuKernelTests
{
    [Theory]
    // seed, batch, tokens, D, dh, g, causal, window, lengths ("" = all full), bias, attention wanted
    [InlineData(1, 1, 1, 5, 1, 1, false, 0, "", false, true)]
    [InlineData(3, 2, 2, 5, 1, 2, true, 0, "2,1", true, true)]
    [InlineData(5, 3, 9, 33, 17, 2, true, 0, "9,1,5", false, true)]
    [InlineData(6, 2, 31, 65, 16, 4, true, 2, "", true, true)]
    [InlineData(13, 1, 31, 33, 3, 2, true, 5, "20", true, false)]
    [InlineData(20, 2, 31, 5, 3, 4, false, 1, "7,31", true, true)]
    public void Matches_the_reference(int seed, int batch, int tokens, int modelDim, int headDim, int groupSize,
        bool causal, int window, string lengthList, bool bias, bool wantAttention)
    {
        var random = new Random(seed);
        var shape = new HeadGroupShape(modelDim, headDim, groupSize);
        var weights = RandomTensors.GroupWeights(random, shape, 0.1, bias);
        var input = RandomTensors.Normal(random, batch * tokens * modelDim);
        int[] lengths = lengthList.Length == 0 ? [] : lengthList.Split(',').Select(int.Parse).ToArray();
        var options = new AttentionOptions(1 / MathF.Sqrt(headDim), causal, window);
        int attentionLength = wantAttention ? batch * groupSize * tokens * tokens : 0;

        var expectedZ = new float[batch * tokens * shape.QueryWidth];
        var expectedAttention = new float[attentionLength];
        new ReferenceKernel().Attend(input, batch, tokens, lengths, weights, options, expectedZ, expectedAttention);

        var z = new float[expectedZ.Length];
        z.AsSpan().Fill(float.NaN);
        var attention = new float[attentionLength];
        attention.AsSpan().Fill(float.NaN);
        TestKernels.Gpu.Attend(input, batch, tokens, lengths, weights, options, z, attention);

        TensorAssert.Close(expectedZ, z, "Z");
        TensorAssert.Close(expectedAttention, attention, "attention");
    }

    [Theory]
    // seed, rows, inner, outer, bias
    [InlineData(1, 1, 1, 1, false)]
    [InlineData(2, 3, 5, 7, true)]
    [InlineData(3, 9, 33, 65, true)]
    [InlineData(4, 2, 0, 3, true)]
    public void Project_matches_a_naive_float64_product(int seed, int rows, int inner, int outer, bool bias)
    {
        var random = new Random(seed);
        var x = RandomTensors.Normal(random, rows * inner);
        var w = RandomTensors.Normal(random, inner * outer, 0.1);
        float[]? b = bias ? RandomTensors.Normal(random, outer, 0.1) : null;
        var product = NaiveMath.MatMul(x, rows, inner, w, outer, b);
        var expected = new float[rows * outer];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < outer; j++)
                expected[i * outer + j] = (float)product[i, j];

        var y = new float[rows * outer];
        y.AsSpan().Fill(float.NaN);
        TestKernels.Gpu.Project(x, rows, inner, w, outer, b, y);

        TensorAssert.Close(expected, y, "y");
    }

    [Fact]
    public void Names_its_device()
    {
        var kernel = TestKernels.Gpu;
        Assert.Equal(GpuKernel.IsCudaAvailable() ? "gpu-cuda" : "gpu-cpu", kernel.Name);
        Assert.False(string.IsNullOrWhiteSpace(kernel.DeviceName));
    }

    [Fact]
    public void Prepared_weights_give_the_same_numbers_as_unprepared_ones()
    {
        var random = new Random(41);
        var shape = new HeadGroupShape(ModelDim: 12, HeadDim: 4, QueryHeads: 2);
        var weights = RandomTensors.GroupWeights(random, shape, 0.1, bias: true);
        var copy = new HeadGroupWeights(shape, weights.Query, weights.Key, weights.Value, weights.QueryBias, weights.KeyBias, weights.ValueBias);
        var input = RandomTensors.Normal(random, 5 * 12);
        var options = new AttentionOptions(0.5f, Causal: true, Window: 0);
        var prepared = new float[5 * shape.QueryWidth];
        var unprepared = new float[prepared.Length];

        TestKernels.Gpu.Prepare(weights);
        TestKernels.Gpu.Attend(input, 1, 5, [], weights, options, prepared, []);
        TestKernels.Gpu.Attend(input, 1, 5, [], copy, options, unprepared, []);

        Assert.Equal(unprepared, prepared);
    }
}
