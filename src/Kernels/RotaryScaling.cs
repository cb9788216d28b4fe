namespace Headwise.Kernels;

/// <summary>How a checkpoint stretches RoPE's frequencies to a longer context (Hugging Face <c>rope_scaling</c>).</summary>
public enum RotaryScalingKind
{
    /// <summary>inv_freq_i = θ^(−2i/dim), unchanged.</summary>
    None = 0,
    /// <summary>Hugging Face "linear": every inv_freq divided by the factor (positions interpolated).</summary>
    Linear = 1,
    /// <summary>
    /// Hugging Face "llama3" (Llama 3.1+): wavelengths longer than original/low_freq_factor are divided by the factor,
    /// shorter than original/high_freq_factor kept, and the band between blended smoothly.
    /// </summary>
    Llama3 = 2,
}

/// <summary>
/// The frequency scaling of a <see cref="Rotary"/>: one place computes the inverse frequencies, in float64, for every
/// kernel (the SIMD kernel's cos/sin table, the incremental path, the float64 reference), so they cannot differ.
/// </summary>
/// <param name="Kind">Which formula; <see cref="RotaryScalingKind.None"/> ignores the other fields.</param>
/// <param name="Factor">The context stretch (8 in Llama 3.1).</param>
/// <param name="LowFreqFactor">llama3 only: 1 in Llama 3.1.</param>
/// <param name="HighFreqFactor">llama3 only: 4 in Llama 3.1.</param>
/// <param name="OriginalMaxPositions">llama3 only: the pre-training context (8192 in Llama 3.1).</param>
public readonly record struct RotaryScaling(RotaryScalingKind Kind, double Factor, double LowFreqFactor = 0, double HighFreqFactor = 0,
    int OriginalMaxPositions = 0)
{
    /// <summary>inv_freq_i for i in 0 … dim/2 − 1, after this scaling.</summary>
    public double[] InverseFrequencies(double theta, int dim)
    {
        var inverse = new double[dim / 2];
        for (int i = 0; i < inverse.Length; i++)
            inverse[i] = Scale(Math.Pow(theta, -2.0 * i / dim));
        return inverse;
    }

    private double Scale(double inverseFrequency)
    {
        switch (Kind)
        {
            case RotaryScalingKind.None:
                return inverseFrequency;
            case RotaryScalingKind.Linear:
                return inverseFrequency / Factor;
            case RotaryScalingKind.Llama3:
                double wavelength = 2 * Math.PI / inverseFrequency;
                double lowFrequencyWavelength = OriginalMaxPositions / LowFreqFactor;
                double highFrequencyWavelength = OriginalMaxPositions / HighFreqFactor;
                if (wavelength < highFrequencyWavelength) return inverseFrequency;
                if (wavelength > lowFrequencyWavelength) return inverseFrequency / Factor;
                double smooth = (OriginalMaxPositions / wavelength - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
                return (1 - smooth) * inverseFrequency / Factor + smooth * inverseFrequency;
            default:
                throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "not a rotary scaling.");
        }
    }
}
