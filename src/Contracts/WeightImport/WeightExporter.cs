namespace Headwise.Contracts;

/// <summary>
/// The inverse of <see cref="WeightImporter"/>: re-assembles head groups into a layout's full float32
/// projections, ready for <see cref="SafetensorsWriter"/>.
/// </summary>
public static class WeightExporter
{
    /// <summary>
    /// One F32 tensor per layout tensor of each layer (biases only when <paramref name="spec"/> has them), named
    /// <paramref name="prefix"/> with "{layer}" replaced by the layer index.
    /// </summary>
    public static IReadOnlyList<SafetensorsEntry> Export(IReadOnlyList<LayerWeights> layers, AttentionSpec spec, WeightLayout layout, string prefix)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(spec);
        spec = spec.Resolve();
        AttentionLayouts.CheckSpec(spec, layout);
        AttentionLayouts.CheckPrefix(prefix, spec);
        if (layers.Count != spec.LayerCount)
            throw HeadwiseException.Invalid($"layers has {layers.Count} entries; expected spec.layer_count {spec.LayerCount}.");
        LayoutTensor[] tensors = AttentionLayouts.Tensors(spec, layout);
        foreach (LayoutTensor tensor in tensors)
        {
            long count = SafetensorsTensor.SaturatingProduct(tensor.Shape, sizeof(float));
            if (count > Array.MaxLength)
                throw HeadwiseException.Invalid(
                    $"tensor '{tensor.Suffix}' would have shape {SafetensorsTensor.FormatShape(tensor.Shape)}, over 2 GB; expected a smaller spec.");
        }

        var groupsByLayer = new GroupWeights[layers.Count][];
        for (int layer = 0; layer < layers.Count; layer++)
            groupsByLayer[layer] = CheckLayer(layers[layer], layer, spec);

        var entries = new List<SafetensorsEntry>();
        for (int layer = 0; layer < layers.Count; layer++)
        {
            string layerPrefix = AttentionLayouts.LayerPrefix(prefix, layer);
            Dictionary<string, float[]> full = layout == WeightLayout.Gpt2
                ? JoinGpt2(spec, groupsByLayer[layer], layers[layer].OutputBias)
                : JoinLinear(spec, groupsByLayer[layer], layers[layer].OutputBias);
            foreach (LayoutTensor tensor in tensors)
                if (full.TryGetValue(tensor.Suffix, out float[]? values))
                    entries.Add(SafetensorsEntry.F32(layerPrefix + tensor.Suffix, values, [.. tensor.Shape]));
        }
        return entries;
    }

    /// <summary>The layer's groups ordered by group index, each with arrays of the sizes the spec implies.</summary>
    internal static GroupWeights[] CheckLayer(LayerWeights? weights, int layer, AttentionSpec spec)
    {
        string field = $"layers[{layer}]";
        if (weights is null)
            throw HeadwiseException.Invalid($"{field} is null; expected the layer's weights.");
        if (weights.Layer != layer)
            throw HeadwiseException.Invalid($"{field}.layer is {weights.Layer}; expected {layer}.");
        if (weights.Groups is null || weights.Groups.Length != spec.GroupCount)
            throw HeadwiseException.Invalid(
                $"{field}.groups has {weights.Groups?.Length ?? 0} entries; expected spec.kv_head_count {spec.GroupCount}.");
        long d = spec.ModelDim, dh = spec.HeadDim, width = (long)spec.GroupSize * spec.HeadDim;
        var ordered = new GroupWeights[spec.GroupCount];
        for (int i = 0; i < weights.Groups.Length; i++)
        {
            GroupWeights? group = weights.Groups[i];
            if (group is null)
                throw HeadwiseException.Invalid($"{field}.groups[{i}] is null; expected a group's weights.");
            if (group.Group < 0 || group.Group >= ordered.Length || ordered[group.Group] is not null)
                throw HeadwiseException.Invalid(
                    $"{field}.groups[{i}].group is {group.Group}; expected each of 0..{ordered.Length - 1} exactly once.");
            ordered[group.Group] = group;
            string g = $"{field}.groups[{i}]";
            CheckFloats(group.Query, d * width, $"{g}.query", "D × g·dh");
            CheckFloats(group.Key, d * dh, $"{g}.key", "D × dh");
            CheckFloats(group.Value, d * dh, $"{g}.value", "D × dh");
            CheckFloats(group.Output, width * d, $"{g}.output", "g·dh × D");
            CheckBias(group.QueryBias, width, $"{g}.query_bias", "g·dh", spec.Bias);
            CheckBias(group.KeyBias, dh, $"{g}.key_bias", "dh", spec.Bias);
            CheckBias(group.ValueBias, dh, $"{g}.value_bias", "dh", spec.Bias);
        }
        CheckBias(weights.OutputBias, d, $"{field}.output_bias", "D", spec.HasOutputBias,
            spec.HasOutputBias != spec.Bias ? "spec.output_bias" : "spec.bias");
        return ordered;
    }

    private static void CheckFloats(byte[]? bytes, long count, string field, string shape)
    {
        if (bytes is null || bytes.LongLength != count * sizeof(float))
            throw HeadwiseException.Invalid(
                $"{field} has {bytes?.Length ?? 0} bytes; expected {count * sizeof(float)} ({shape} = {count} float32 values).");
    }

    private static void CheckBias(byte[]? bytes, long count, string field, string shape, bool bias, string flag = "spec.bias")
    {
        if (!bias)
        {
            if (bytes is not null)
                throw HeadwiseException.Invalid($"{field} is set but {flag} is false; expected null.");
            return;
        }
        CheckFloats(bytes, count, field, shape);
    }

    private static Dictionary<string, float[]> JoinGpt2(AttentionSpec spec, GroupWeights[] groups, byte[]? outputBias)
    {
        int d = spec.ModelDim, dh = spec.HeadDim, width = spec.GroupSize * dh;
        var attn = new float[d * 3 * d];
        var proj = new float[d * d];
        float[]? attnBias = spec.Bias ? new float[3 * d] : null;
        foreach (GroupWeights group in groups)
        {
            int column = group.Group * width;
            MatrixBlocks.Put(FloatBytes.AsFloats(group.Query), attn, 3 * d, 0, d, column, width, transpose: false);
            MatrixBlocks.Put(FloatBytes.AsFloats(group.Key), attn, 3 * d, 0, d, d + column, dh, transpose: false);
            MatrixBlocks.Put(FloatBytes.AsFloats(group.Value), attn, 3 * d, 0, d, 2 * d + column, dh, transpose: false);
            MatrixBlocks.Put(FloatBytes.AsFloats(group.Output), proj, d, column, width, 0, d, transpose: false);
            if (attnBias is not null)
            {
                FloatBytes.AsFloats(group.QueryBias!).CopyTo(attnBias.AsSpan(column, width));
                FloatBytes.AsFloats(group.KeyBias!).CopyTo(attnBias.AsSpan(d + column, dh));
                FloatBytes.AsFloats(group.ValueBias!).CopyTo(attnBias.AsSpan(2 * d + column, dh));
            }
        }
        var full = new Dictionary<string, float[]> { ["c_attn.weight"] = attn, ["c_proj.weight"] = proj };
        if (attnBias is not null) full["c_attn.bias"] = attnBias;
        if (spec.HasOutputBias) full["c_proj.bias"] = FloatBytes.ToFloats(outputBias!);
        return full;
    }

    private static Dictionary<string, float[]> JoinLinear(AttentionSpec spec, GroupWeights[] groups, byte[]? outputBias)
    {
        int d = spec.ModelDim, dh = spec.HeadDim, width = spec.GroupSize * dh;
        int queryWidth = spec.HeadCount * dh, kvWidth = spec.KvHeadCount * dh;
        var q = new float[queryWidth * d];
        var k = new float[kvWidth * d];
        var v = new float[kvWidth * d];
        var o = new float[d * queryWidth];
        float[]? qBias = spec.Bias ? new float[queryWidth] : null;
        float[]? kBias = spec.Bias ? new float[kvWidth] : null;
        float[]? vBias = spec.Bias ? new float[kvWidth] : null;
        foreach (GroupWeights group in groups)
        {
            int queryRow = group.Group * width, kvRow = group.Group * dh;
            MatrixBlocks.Put(FloatBytes.AsFloats(group.Query), q, d, queryRow, width, 0, d, transpose: true);
            MatrixBlocks.Put(FloatBytes.AsFloats(group.Key), k, d, kvRow, dh, 0, d, transpose: true);
            MatrixBlocks.Put(FloatBytes.AsFloats(group.Value), v, d, kvRow, dh, 0, d, transpose: true);
            MatrixBlocks.Put(FloatBytes.AsFloats(group.Output), o, queryWidth, 0, d, queryRow, width, transpose: true);
            if (spec.Bias)
            {
                FloatBytes.AsFloats(group.QueryBias!).CopyTo(qBias.AsSpan(queryRow, width));
                FloatBytes.AsFloats(group.KeyBias!).CopyTo(kBias.AsSpan(kvRow, dh));
                FloatBytes.AsFloats(group.ValueBias!).CopyTo(vBias.AsSpan(kvRow, dh));
            }
        }
        var full = new Dictionary<string, float[]>
        {
            ["q_proj.weight"] = q, ["k_proj.weight"] = k, ["v_proj.weight"] = v, ["o_proj.weight"] = o,
        };
        if (spec.Bias)
        {
            full["q_proj.bias"] = qBias!;
            full["k_proj.bias"] = kBias!;
            full["v_proj.bias"] = vBias!;
        }
        if (spec.HasOutputBias) full["o_proj.bias"] = FloatBytes.ToFloats(outputBias!);
        return full;
    }
}
