namespace Headwise.Contracts;

/// <summary>
/// A checkpoint's <c>rope_scaling</c>, as Hugging Face writes it in config.json: how RoPE's inverse frequencies are
/// stretched for a longer context. Every kernel and the float64 reference compute the same frequencies from it.
/// </summary>
public sealed record RopeScaling
{
    /// <summary>The type names Hugging Face uses that Headwise computes.</summary>
    public const string Linear = "linear", Llama3 = "llama3";

    /// <summary><c>rope_type</c>: "linear" (inv_freq / factor) or "llama3" (Llama 3.1's banded stretch).</summary>
    public string Type { get; init; } = "";
    /// <summary>The stretch; positive.</summary>
    public float Factor { get; init; }
    /// <summary>llama3 only: wavelengths above original_max_position_embeddings / low_freq_factor are divided by the factor.</summary>
    public float LowFreqFactor { get; init; }
    /// <summary>llama3 only: wavelengths below original_max_position_embeddings / high_freq_factor are kept.</summary>
    public float HighFreqFactor { get; init; }
    /// <summary>llama3 only: the pre-training context, original_max_position_embeddings.</summary>
    public int OriginalMaxPositions { get; init; }

    /// <summary>Throws InvalidArgument naming the first field that does not fit.</summary>
    internal void Check()
    {
        static void Require(bool ok, string field, string problem)
        {
            if (!ok) throw HeadwiseException.Invalid($"spec.rope_scaling.{field} {problem}.");
        }
        Require(Type is Linear or Llama3, "type", $"must be '{Linear}' or '{Llama3}', got '{EchoedValue.Of(Type ?? "")}'");
        Require(float.IsFinite(Factor) && Factor > 0, "factor", $"must be a positive finite number, got {Factor}");
        if (Type == Linear)
        {
            Require(LowFreqFactor == 0 && HighFreqFactor == 0 && OriginalMaxPositions == 0, "type",
                "is 'linear', which takes only a factor; low_freq_factor, high_freq_factor and original_max_positions must be 0");
            return;
        }
        Require(float.IsFinite(LowFreqFactor) && LowFreqFactor > 0, "low_freq_factor", $"must be a positive finite number, got {LowFreqFactor}");
        Require(float.IsFinite(HighFreqFactor) && HighFreqFactor > LowFreqFactor, "high_freq_factor",
            $"must be finite and greater than low_freq_factor {LowFreqFactor}, got {HighFreqFactor}");
        Require(OriginalMaxPositions > 0, "original_max_positions", $"must be positive, got {OriginalMaxPositions}");
    }
}
