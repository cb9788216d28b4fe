namespace Headwise.Contracts;

/// <summary>One tensor a layer has in a <see cref="WeightLayout"/>: its name after the layer prefix and its shape.</summary>
internal sealed record LayoutTensor(string Suffix, long[] Shape, bool IsBias, bool IsOutput = false)
{
    /// <summary>Whether a model of <paramref name="spec"/> has this tensor: a bias only when the spec has that bias.</summary>
    public bool In(AttentionSpec spec) => !IsBias || (IsOutput ? spec.HasOutputBias : spec.Bias);
}

/// <summary>
/// What each <see cref="WeightLayout"/> calls a layer's attention tensors and how it shapes them; the importer
/// and the exporter both read it from here.
/// </summary>
internal static class AttentionLayouts
{
    public const string LayerPlaceholder = "{layer}";

    /// <summary>Every tensor of one layer, biases included, in the order a checkpoint lists them.</summary>
    public static LayoutTensor[] Tensors(AttentionSpec spec, WeightLayout layout)
    {
        long d = spec.ModelDim, queryWidth = (long)spec.HeadCount * spec.HeadDim, kvWidth = (long)spec.KvHeadCount * spec.HeadDim;
        return layout switch
        {
            // Conv1D: weight [in, out], y = x·W + b.
            WeightLayout.Gpt2 =>
            [
                new("c_attn.weight", [d, 3 * d], false),
                new("c_attn.bias", [3 * d], true),
                new("c_proj.weight", [d, d], false),
                new("c_proj.bias", [d], true, IsOutput: true),
            ],
            // nn.Linear: weight [out, in], y = x·Wᵀ + b.
            WeightLayout.Linear =>
            [
                new("q_proj.weight", [queryWidth, d], false),
                new("q_proj.bias", [queryWidth], true),
                new("k_proj.weight", [kvWidth, d], false),
                new("k_proj.bias", [kvWidth], true),
                new("v_proj.weight", [kvWidth, d], false),
                new("v_proj.bias", [kvWidth], true),
                new("o_proj.weight", [d, queryWidth], false),
                new("o_proj.bias", [d], true, IsOutput: true),
            ],
            _ => throw UnknownLayout(layout),
        };
    }

    /// <summary>Rejects a spec the layout cannot express (GPT-2 packs Q, K, V as three D-wide blocks).</summary>
    public static void CheckSpec(AttentionSpec spec, WeightLayout layout)
    {
        if (layout is not (WeightLayout.Gpt2 or WeightLayout.Linear))
            throw UnknownLayout(layout);
        if (layout != WeightLayout.Gpt2)
            return;
        if ((long)spec.HeadCount * spec.HeadDim != spec.ModelDim)
            throw HeadwiseException.Invalid(
                $"spec.head_dim {spec.HeadDim} × spec.head_count {spec.HeadCount} is {(long)spec.HeadCount * spec.HeadDim}; " +
                $"the gpt2 layout needs it to equal spec.model_dim {spec.ModelDim}.");
        if (spec.KvHeadCount != spec.HeadCount)
            throw HeadwiseException.Invalid(
                $"spec.kv_head_count is {spec.KvHeadCount}; the gpt2 layout has no grouped keys and needs it to equal spec.head_count {spec.HeadCount}.");
    }

    /// <summary>The prefix of layer <paramref name="layer"/>'s tensor names.</summary>
    public static string LayerPrefix(string prefix, int layer) => prefix.Replace(LayerPlaceholder, layer.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>A prefix without "{layer}" would give every layer the same tensors, which is allowed only for one layer.</summary>
    public static void CheckPrefix(string? prefix, AttentionSpec spec)
    {
        if (prefix is null)
            throw HeadwiseException.Invalid("prefix is null; expected a tensor name prefix such as 'h.{layer}.attn.'.");
        if (spec.LayerCount > 1 && !prefix.Contains(LayerPlaceholder, StringComparison.Ordinal))
            throw HeadwiseException.Invalid(
                $"prefix '{EchoedValue.Of(prefix)}' has no '{LayerPlaceholder}' but spec.layer_count is {spec.LayerCount}; " +
                "expected a prefix such as 'h.{layer}.attn.'.");
    }

    private static HeadwiseException UnknownLayout(WeightLayout layout) =>
        HeadwiseException.Invalid($"layout {(int)layout} is not a weight layout; expected Gpt2 ({(int)WeightLayout.Gpt2}) or Linear ({(int)WeightLayout.Linear}).");
}
