namespace Headwise.Kernels.Tests;

/// <summary>
/// The SIMD kernel against the float64 reference on seeded random cases, at every vector width this
/// machine runs natively and at scalar, so the fallbacks of machines without AVX-512 stay tested.
/// Tolerance (see <see cref="TensorAssert"/>): max abs error ≤ 1e-4, relative Frobenius error ≤ 1e-5,
/// for Z and for the attention probabilities.
/// </summary>
public class SimdKernelTests
{
    /// <summary>The widths to test here: every native one up to the best, and scalar.</summary>
    internal static IEnumerable<VectorWidth> Widths() =>
        new[] { VectorWidth.Scalar, VectorWidth.Bits128, VectorWidth.Bits256, VectorWidth.Bits512 }
            .Where(width => width <= VectorWidths.Best);

    [Theory]
    // seed, batch, tokens, D, dh, g, causal, window, lengths ("" = all full), bias, attention wanted, weight std
    [InlineData(1, 1, 1, 5, 1, 1, false, 0, "", false, true, 0.02)]
    [InlineData(2, 1, 1, 7, 3, 1, true, 0, "", true, true, 0.1)]
    [InlineData(3, 2, 2, 5, 1, 2, true, 0, "2,1", true, true, 0.1)]
    [InlineData(4, 1, 9, 33, 16, 1, false, 0, "", true, false, 0.02)]
    [InlineData(5, 3, 9, 33, 17, 2, true, 0, "9,1,5", false, true, 0.1)]
    [InlineData(6, 2, 31, 65, 16, 4, true, 2, "", true, true, 0.02)]
    [InlineData(7, 1, 31, 96, 64, 1, false, 5, "", false, true, 0.1)]
    [InlineData(8, 2, 31, 130, 17, 8, true, 0, "31,12", true, false, 0.02)]
    [InlineData(9, 1, 100, 96, 64, 2, true, 0, "", true, true, 0.02)]
    [InlineData(10, 2, 100, 130, 16, 4, false, 0, "100,37", true, true, 0.1)]
    [InlineData(11, 3, 9, 7, 3, 8, false, 0, "", false, true, 0.1)]
    [InlineData(12, 2, 9, 65, 1, 4, true, 1, "", true, true, 0.1)]
    [InlineData(13, 1, 31, 33, 3, 2, true, 5, "20", true, true, 0.1)]
    [InlineData(14, 2, 2, 130, 64, 8, false, 0, "1,2", true, true, 0.02)]
    [InlineData(15, 3, 31, 96, 17, 1, false, 2, "31,1,4", false, true, 0.1)]
    [InlineData(16, 1, 100, 65, 17, 1, true, 5, "60", false, true, 0.1)]
    [InlineData(17, 2, 9, 130, 64, 4, true, 2, "3,9", true, true, 0.1)]
    [InlineData(18, 1, 1, 130, 64, 8, true, 1, "1", true, true, 0.1)]
    [InlineData(19, 3, 100, 33, 16, 8, true, 0, "", false, false, 0.02)]
    [InlineData(20, 2, 31, 5, 3, 4, false, 1, "7,31", true, true, 0.1)]
    public void Matches_the_reference(int seed, int batch, int tokens, int modelDim, int headDim, int groupSize,
        bool causal, int window, string lengthList, bool bias, bool wantAttention, double weightStd)
    {
        var random = new Random(seed);
        var shape = new HeadGroupShape(modelDim, headDim, groupSize);
        var weights = RandomTensors.GroupWeights(random, shape, weightStd, bias);
        var input = RandomTensors.Normal(random, batch * tokens * modelDim);
        int[] lengths = lengthList.Length == 0 ? [] : lengthList.Split(',').Select(int.Parse).ToArray();
        var options = new AttentionOptions(1 / MathF.Sqrt(headDim), causal, window);
        int attentionLength = wantAttention ? batch * groupSize * tokens * tokens : 0;

        var expectedZ = new float[batch * tokens * shape.QueryWidth];
        var expectedAttention = new float[attentionLength];
        new ReferenceKernel().Attend(input, batch, tokens, lengths, weights, options, expectedZ, expectedAttention);

        foreach (var width in Widths())
        {
            var z = new float[expectedZ.Length];
            z.AsSpan().Fill(float.NaN); // the kernel must write every element, not rely on a cleared buffer
            var attention = new float[attentionLength];
            attention.AsSpan().Fill(float.NaN);
            new SimdKernel(width).Attend(input, batch, tokens, lengths, weights, options, z, attention);

            TensorAssert.Close(expectedZ, z, $"Z at {width}");
            TensorAssert.Close(expectedAttention, attention, $"attention at {width}");
        }
    }

    [Fact]
    public void Default_kernel_uses_the_best_width_and_matches_the_reference()
    {
        var random = new Random(99);
        var shape = new HeadGroupShape(ModelDim: 64, HeadDim: 16, QueryHeads: 2);
        var weights = RandomTensors.GroupWeights(random, shape, 0.02, bias: true);
        var input = RandomTensors.Normal(random, 2 * 20 * 64);
        var options = new AttentionOptions(0.25f, Causal: true, Window: 0);
        var expected = new float[2 * 20 * shape.QueryWidth];
        var actual = new float[expected.Length];

        new ReferenceKernel().Attend(input, 2, 20, [], weights, options, expected, []);
        new SimdKernel().Attend(input, 2, 20, [], weights, options, actual, []);

        TensorAssert.Close(expected, actual, "Z");
    }
}
