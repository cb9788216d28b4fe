namespace Headwise.Kernels.Tests;

/// <summary>
/// rope_scaling: the inverse frequencies against Hugging Face's published formulas, written here again from
/// transformers' _compute_llama3_parameters and _compute_linear_scaling_rope_parameters (torch.where form), and every
/// kernel's RoPE forward with scaling against the float64 reference kernel.
/// </summary>
public sealed class RotaryScalingTests
{
    /// <summary>transformers' llama3 rope init, step by step as published, in float64.</summary>
    private static double[] Llama3InvFreq(double theta, int dim, double factor, double lowFreqFactor, double highFreqFactor, double oldContextLen)
    {
        var invFreq = Enumerable.Range(0, dim / 2).Select(i => 1.0 / Math.Pow(theta, 2.0 * i / dim)).ToArray();
        double lowFreqWavelen = oldContextLen / lowFreqFactor;
        double highFreqWavelen = oldContextLen / highFreqFactor;
        var result = new double[invFreq.Length];
        for (int i = 0; i < invFreq.Length; i++)
        {
            double wavelen = 2 * Math.PI / invFreq[i];
            // inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
            double llama = wavelen > lowFreqWavelen ? invFreq[i] / factor : invFreq[i];
            // smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            double smoothFactor = (oldContextLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
            double smoothed = (1 - smoothFactor) * llama / factor + smoothFactor * llama;
            // is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
            bool medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
            result[i] = medium ? smoothed : llama;
        }
        return result;
    }

    [Theory]
    [InlineData(500000.0, 128, 8.0, 1.0, 4.0, 8192)]   // Llama 3.1 8B
    [InlineData(500000.0, 64, 32.0, 1.0, 4.0, 8192)]   // Llama 3.2 1B
    [InlineData(10000.0, 16, 4.0, 1.0, 4.0, 64)]       // the tests' small model: each band has a dim
    public void Llama3_inverse_frequencies_are_the_published_formula(double theta, int dim, double factor, double low, double high, int original)
    {
        var actual = new RotaryScaling(RotaryScalingKind.Llama3, factor, low, high, original).InverseFrequencies(theta, dim);
        var expected = Llama3InvFreq(theta, dim, factor, low, high, original);
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-15 * expected[i], $"inv_freq[{i}]: {actual[i]:R} against {expected[i]:R}");
        // The three bands are all there: kept, stretched by the factor, blended in between.
        var plain = new RotaryScaling().InverseFrequencies(theta, dim);
        Assert.Equal(plain[0], actual[0]);
        Assert.Equal(plain[^1] / factor, actual[^1], 15);
        Assert.Contains(Enumerable.Range(0, dim / 2), i => actual[i] < plain[i] && actual[i] > plain[i] / factor);
    }

    [Fact]
    public void Linear_scaling_divides_every_inverse_frequency_by_the_factor()
    {
        var actual = new RotaryScaling(RotaryScalingKind.Linear, 2.5).InverseFrequencies(10000, 32);
        for (int i = 0; i < 16; i++)
            Assert.Equal(1.0 / Math.Pow(10000, 2.0 * i / 32) / 2.5, actual[i], 15);
    }

    public static TheoryData<RotaryScalingKind> Kinds => new() { RotaryScalingKind.Linear, RotaryScalingKind.Llama3 };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Every_kernel_with_scaling_matches_the_reference_and_the_rotation_follows_the_scaled_frequencies(RotaryScalingKind kind)
    {
        var scaling = kind == RotaryScalingKind.Linear ? new RotaryScaling(kind, 4) : new RotaryScaling(kind, 4, 1, 4, 64);
        var rotary = new Rotary(10000f, 16, scaling);
        var random = new Random((int)kind);

        // One head vector at position 50, rotated by the table every kernel reads, against cos/sin of the scaled inv_freq.
        var vector = RandomTensors.Normal(random, 16);
        var rotated = (float[])vector.Clone();
        rotary.Apply(rotated, 1, 1, 16, 50);
        double[] invFreq = kind == RotaryScalingKind.Linear
            ? Enumerable.Range(0, 8).Select(i => 1.0 / Math.Pow(10000, i / 8.0) / 4).ToArray()
            : Llama3InvFreq(10000, 16, 4, 1, 4, 64);
        for (int i = 0; i < 8; i++)
        {
            double cos = Math.Cos(50 * invFreq[i]), sin = Math.Sin(50 * invFreq[i]);
            Assert.Equal(vector[i] * cos - vector[i + 8] * sin, rotated[i], 5);
            Assert.Equal(vector[i + 8] * cos + vector[i] * sin, rotated[i + 8], 5);
        }

        var shape = new HeadGroupShape(24, 16, 2);
        var weights = RandomTensors.GroupWeights(random, shape, 0.3, bias: true);
        const int tokens = 70;
        var x = RandomTensors.Normal(random, tokens * shape.ModelDim);
        var options = new AttentionOptions(0.25f, Causal: true, 0, rotary);
        var expected = new float[tokens * shape.QueryWidth];
        new ReferenceKernel().Attend(x, 1, tokens, [], weights, options, expected, []);
        var unscaled = new float[tokens * shape.QueryWidth];
        new ReferenceKernel().Attend(x, 1, tokens, [], weights, options with { Rotary = new Rotary(10000f, 16) }, unscaled, []);
        Assert.True(expected.Zip(unscaled, (a, b) => Math.Abs(a - b)).Max() > 1e-3, "scaling changes the output");

        var fused = new float[tokens * shape.QueryWidth];
        new SimdKernel().Attend(x, 1, tokens, [], weights, options, fused, []);
        TensorAssert.Close(expected, fused, $"simd Attend, {kind}");
        var incremental = new float[tokens * shape.QueryWidth];
        IncrementalAttention.Forward(new SimdKernel(), x, 1, tokens, [], weights, options with { Rotary = default }, rotary, incremental, Span<float>.Empty);
        TensorAssert.Close(expected, incremental, $"simd projections + rotary + incremental, {kind}");
        // The GPU kernel has no RoPE step: RoPE layers take this path on it (its projections, the shared rotary).
        var gpu = new float[tokens * shape.QueryWidth];
        IncrementalAttention.Forward(TestKernels.Gpu, x, 1, tokens, [], weights, options with { Rotary = default }, rotary, gpu, Span<float>.Empty);
        TensorAssert.Close(expected, gpu, $"gpu ({TestKernels.Gpu.Name}) projections + rotary + incremental, {kind}");
    }
}
