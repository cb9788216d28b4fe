using Headwise.Contracts;

namespace Headwise.Silo.Gateway;

/// <summary>
/// How large a model CreateModel accepts, bound from the "Headwise" section (Headwise__MaxHeadsPerModel,
/// Headwise__MaxModelWeightBytes): creating a model places and initialises every head before any weight arrives, so a
/// spec of 1,024 layers × 1,024 heads would cost a million grains for one call.
/// </summary>
public sealed class ModelLimits
{
    /// <summary>Most query heads of one model over all its layers (layer_count × head_count).</summary>
    public int MaxHeadsPerModel { get; set; } = 16384;

    /// <summary>Most float32 bytes of one model's attention weights (W_Q, W_K, W_V, W_O and biases of every layer).</summary>
    public long MaxModelWeightBytes { get; set; } = 64L << 30;

    /// <summary>Every problem with these settings, each naming its Headwise__ variable; empty when usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (MaxHeadsPerModel < 1)
            problems.Add($"Headwise__MaxHeadsPerModel is {MaxHeadsPerModel}; it must be at least 1.");
        if (MaxModelWeightBytes < 1)
            problems.Add($"Headwise__MaxModelWeightBytes is {MaxModelWeightBytes}; it must be at least 1.");
        return problems;
    }

    /// <summary>The resolved spec, or RESOURCE_EXHAUSTED naming the limit it passes.</summary>
    public AttentionSpec Check(AttentionSpec spec)
    {
        var resolved = spec.Resolve();
        long heads = (long)resolved.LayerCount * resolved.HeadCount;
        if (heads > MaxHeadsPerModel)
            throw new HeadwiseException(ErrorCode.ResourceExhausted,
                $"spec: {heads} heads (layer_count {resolved.LayerCount} × head_count {resolved.HeadCount}); " +
                $"this cluster allows at most {MaxHeadsPerModel} per model (Headwise__MaxHeadsPerModel).");
        long bytes = WeightBytes(resolved);
        if (bytes > MaxModelWeightBytes)
            throw new HeadwiseException(ErrorCode.ResourceExhausted,
                $"spec: the model's weights would take {bytes} bytes in float32; " +
                $"this cluster allows at most {MaxModelWeightBytes} per model (Headwise__MaxModelWeightBytes).");
        return resolved;
    }

    /// <summary>Per layer: W_Q [D × Hq·dh], W_K and W_V [D × Hkv·dh], W_O [Hq·dh × D], and their biases. Each factor is at
    /// most 2^16 (<see cref="AttentionSpec.MaxDim"/>) and layers at most 1,024, so the product stays below 2^63.</summary>
    public static long WeightBytes(AttentionSpec resolved)
    {
        long d = resolved.ModelDim, query = (long)resolved.HeadCount * resolved.HeadDim, kv = (long)resolved.KvHeadCount * resolved.HeadDim;
        long perLayer = 2 * d * query + 2 * d * kv;
        if (resolved.Bias) perLayer += query + 2 * kv;
        if (resolved.HasOutputBias) perLayer += d;
        return checked(resolved.LayerCount * perLayer * sizeof(float));
    }
}
