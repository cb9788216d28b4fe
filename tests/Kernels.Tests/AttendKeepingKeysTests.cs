namespace Headwise.Kernels.Tests;

/// <summary>
/// <see cref="IHeadKernel.AttendKeepingKeys"/>: a prefill's Z is the kernel's own <see cref="IHeadKernel.Attend"/> bit for
/// bit, and the K and V it hands back (K after RoPE at positions 0 …) are x·W_K + b_K and x·W_V + b_V within the kernel
/// tolerance (max abs 1e-4, relative Frobenius 1e-5) of float64 products. The SIMD kernel keeps them from its one GEMM;
/// the reference kernel takes the interface's default, which projects them again.
/// </summary>
public class AttendKeepingKeysTests
{
    [Theory]
    // seed, tokens, D, dh, g, causal, window, rotary dim (0: none), bias
    [InlineData(1, 100, 64, 16, 2, true, 0, 0, true)]
    [InlineData(2, 37, 48, 32, 1, true, 0, 8, false)]
    [InlineData(3, 300, 33, 17, 4, true, 5, 0, true)]
    [InlineData(4, 16, 130, 64, 2, false, 0, 16, true)]
    public void Z_is_attends_and_K_and_V_are_the_projections(int seed, int tokens, int modelDim, int headDim, int groupSize,
        bool causal, int window, int rotaryDim, bool bias)
    {
        var random = new Random(seed);
        var shape = new HeadGroupShape(modelDim, headDim, groupSize);
        var weights = RandomTensors.GroupWeights(random, shape, 0.1, bias);
        var input = RandomTensors.Normal(random, tokens * modelDim);
        var rotary = rotaryDim > 0 ? new Rotary(10000f, rotaryDim) : Rotary.None;
        var options = new AttentionOptions(1 / MathF.Sqrt(headDim), causal, window, rotary);

        var expectedKeys = Floats(NaiveMath.MatMul(input, tokens, modelDim, weights.Key, headDim, weights.KeyBias));
        rotary.Apply(expectedKeys, tokens, 1, headDim, 0);
        var expectedValues = Floats(NaiveMath.MatMul(input, tokens, modelDim, weights.Value, headDim, weights.ValueBias));

        var kernels = SimdKernelTests.Widths().Select(width => ((IHeadKernel)new SimdKernel(width), $"simd {width}"))
            .Append(((IHeadKernel)new ReferenceKernel(), "reference"));
        foreach (var (kernel, name) in kernels)
        {
            var attended = new float[tokens * shape.QueryWidth];
            kernel.Attend(input, 1, tokens, [], weights, options, attended, []);
            var output = new float[attended.Length];
            var keys = new float[tokens * headDim];
            var values = new float[tokens * headDim];
            kernel.AttendKeepingKeys(input, tokens, weights, options, output, keys, values);

            Assert.Equal(attended, output);
            TensorAssert.Close(expectedKeys, keys, $"K of {name}");
            TensorAssert.Close(expectedValues, values, $"V of {name}");
        }
    }

    [Fact]
    public void Keys_of_the_wrong_length_are_refused()
    {
        var shape = new HeadGroupShape(8, 4, 1);
        var weights = RandomTensors.GroupWeights(new Random(1), shape, 0.1, bias: false);
        var options = new AttentionOptions(0.5f, true, 0);
        foreach (var kernel in new IHeadKernel[] { new SimdKernel(), new ReferenceKernel() })
            Assert.Throws<ArgumentException>(() =>
                kernel.AttendKeepingKeys(new float[3 * 8], 3, weights, options, new float[3 * 4], new float[2 * 4], new float[3 * 4]));
    }

    private static float[] Floats(double[,] matrix) => matrix.Cast<double>().Select(v => (float)v).ToArray();
}
