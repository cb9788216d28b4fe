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
    // Longer than one 256-key chunk: the online softmax rescales across chunks (std 0.5 makes the running
    // max move), padding and windows end inside a chunk, and the attention map takes the one-chunk path.
    [InlineData(21, 1, 300, 64, 16, 2, false, 0, "", true, false, 0.5)]
    [InlineData(22, 2, 333, 48, 32, 1, true, 0, "333,290", false, false, 0.5)]
    [InlineData(23, 1, 600, 32, 64, 1, true, 300, "", true, false, 0.3)]
    [InlineData(24, 1, 280, 40, 17, 2, false, 0, "261", true, true, 0.5)]
    [InlineData(25, 1, 530, 24, 8, 1, false, 0, "", false, false, 1.0)]
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
    public void Prepare_packs_once_and_changes_no_number()
    {
        var random = new Random(98);
        var shape = new HeadGroupShape(ModelDim: 40, HeadDim: 8, QueryHeads: 3);
        var weights = RandomTensors.GroupWeights(random, shape, 0.1, bias: false);
        var input = RandomTensors.Normal(random, 17 * 40);
        var options = new AttentionOptions(0.3f, Causal: false, Window: 0);
        var kernel = new SimdKernel();
        var before = new float[17 * shape.QueryWidth];
        var after = new float[before.Length];

        kernel.Attend(input, 1, 17, [], weights, options, before, []);
        kernel.Prepare(weights);
        kernel.Attend(input, 1, 17, [], weights, options, after, []);

        Assert.Equal(before, after);
        ((IHeadKernel)new ReferenceKernel()).Prepare(weights); // the interface's default: nothing to do
    }

    [Fact]
    public unsafe void Vector_exponential_is_within_a_few_ulp_near_zero_and_never_denormal_far_below()
    {
        var xs = new List<float> { 0f, -1e-30f, -1e-7f, -0.5f, -0.34657f, -0.34658f, -1f, -10f, -50f, -86f };
        for (int i = 0; i < 4000; i++) xs.Add(-i * 0.0215f);
        var values = xs.ToArray();
        var results = new float[values.Length + 16];
        foreach (var width in Widths())
        {
            fixed (float* x = values, y = results)
            {
                for (int i = 0; i + 16 <= values.Length; i += 16) Exp(width, x + i, y + i);
            }
            for (int i = 0; i + 16 <= values.Length; i++)
            {
                if (i >= values.Length / 16 * 16) break;
                // A few ulp, plus what rounding x·log₂e to float costs where the width works in base 2 (∝ |x|):
                // large |x| only reaches weights a softmax has no use for (e^−50 ≈ 2e−22).
                double expected = Math.Exp(values[i]);
                Assert.True(Math.Abs(results[i] - expected) <= (4e-7 + 1e-7 * Math.Abs(values[i])) * expected,
                    $"{width}: e^{values[i]} = {results[i]}, expected {expected}");
            }
            // Far below: 0 or a tiny normal float, never a denormal (each would cost a microcode assist).
            var far = new float[16];
            far.AsSpan().Fill(float.NegativeInfinity);
            far[1] = -88f; far[2] = -100f; far[3] = -1e30f; far[4] = -87.2f;
            var tiny = new float[16];
            fixed (float* x = far, y = tiny) Exp(width, x, y);
            Assert.All(tiny, value => Assert.True(value == 0f || (float.IsNormal(value) && value <= 2.4e-38f), $"{width}: {value}"));
        }
    }

    private static unsafe void Exp(VectorWidth width, float* x, float* y)
    {
        for (int i = 0; i < 16; )
        {
            switch (width)
            {
                case VectorWidth.Bits512: Vector512Ops.Store(Vector512Ops.ExpNonPositive(Vector512Ops.Load(x + i)), y + i); i += 16; break;
                case VectorWidth.Bits256: Vector256Ops.Store(Vector256Ops.ExpNonPositive(Vector256Ops.Load(x + i)), y + i); i += 8; break;
                case VectorWidth.Bits128: Vector128Ops.Store(Vector128Ops.ExpNonPositive(Vector128Ops.Load(x + i)), y + i); i += 4; break;
                default: y[i] = ScalarOps.ExpNonPositive(x[i]); i++; break;
            }
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
