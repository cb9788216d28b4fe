namespace Headwise.Contracts;

/// <summary>
/// Turns a checkpoint's attention tensors into the pieces the head grains own. For every layer and key/value
/// group k (query heads k·g .. k·g+g−1, g = Hq / Hkv) it produces, in the row-vector convention Q = X·W_Q + b_Q:
/// W_Q [D × g·dh], W_K [D × dh], W_V [D × dh], their biases, and the group's rows of W_O [g·dh × D], where
/// Y = Concat(Z_0 .. Z_Hq−1)·W_O + b_O.
/// </summary>
public static class WeightImporter
{
    /// <summary>
    /// Imports every layer of <paramref name="spec"/>. <paramref name="prefix"/> names a layer's tensors, with
    /// "{layer}" standing for the layer index (e.g. "h.{layer}.attn."). F32, F16 and BF16 tensors are accepted;
    /// tensors the layout does not name are ignored. Everything is checked before anything is converted, so a
    /// bad file fails whole, with an InvalidArgument error naming the tensor.
    /// </summary>
    public static LayerWeights[] Import(SafetensorsFile file, AttentionSpec spec, WeightLayout layout, string prefix)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(spec);
        spec = spec.Resolve();
        // Check all layers first: the file fails whole or not at all.
        var found = Check(file.Tensors, spec, layout, prefix);
        var layers = new LayerWeights[spec.LayerCount];
        for (int layer = 0; layer < spec.LayerCount; layer++)
            layers[layer] = ImportLayer(found[layer], spec, layout, layer);
        return layers;
    }

    /// <summary>
    /// Finds and checks every layer's tensors (present, float-typed, of the expected shape) among
    /// <paramref name="tensors"/>, whose data need not be there yet: only names, dtypes and shapes are read. Returns,
    /// per layer, the tensors by the layout's suffix.
    /// </summary>
    public static Dictionary<string, SafetensorsTensor>[] Check(IReadOnlyDictionary<string, SafetensorsTensor> tensors, AttentionSpec spec,
        WeightLayout layout, string prefix)
    {
        spec = spec.Resolve();
        AttentionLayouts.CheckSpec(spec, layout);
        AttentionLayouts.CheckPrefix(prefix, spec);
        LayoutTensor[] wanted = AttentionLayouts.Tensors(spec, layout);
        var found = new Dictionary<string, SafetensorsTensor>[spec.LayerCount];
        for (int layer = 0; layer < spec.LayerCount; layer++)
            found[layer] = FindLayer(tensors, spec, wanted, AttentionLayouts.LayerPrefix(prefix, layer));
        return found;
    }

    /// <summary>Splits one layer's checked tensors (<see cref="Check"/>, now with their data) into head groups.</summary>
    public static LayerWeights ImportLayer(IReadOnlyDictionary<string, SafetensorsTensor> tensors, AttentionSpec spec, WeightLayout layout, int layer)
    {
        spec = spec.Resolve();
        float[]? Values(string suffix) => tensors.TryGetValue(suffix, out var t) ? Finite(t, t.ToFloat32()) : null;
        return layout == WeightLayout.Gpt2
            ? SplitGpt2(layer, spec, Values("c_attn.weight")!, Values("c_attn.bias"), Values("c_proj.weight")!, Values("c_proj.bias"))
            : SplitLinear(layer, spec,
                Values("q_proj.weight")!, Values("k_proj.weight")!, Values("v_proj.weight")!, Values("o_proj.weight")!,
                Values("q_proj.bias"), Values("k_proj.bias"), Values("v_proj.bias"), Values("o_proj.bias"));
    }

    /// <summary>
    /// A NaN or infinity in a weight would turn every answer of its heads into NaN: refused here, where each tensor is
    /// converted anyway, so the whole file fails before anything is stored.
    /// </summary>
    private static float[] Finite(SafetensorsTensor tensor, float[] values)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
                throw HeadwiseException.Invalid(
                    $"tensor '{EchoedValue.Of(tensor.Name)}' holds {(float.IsNaN(values[i]) ? "NaN" : "an infinite value")} at flat index {i}; weights must be finite.");
        }
        return values;
    }

    /// <summary>The layer's tensors by suffix, each present, float-typed and of the expected shape.</summary>
    private static Dictionary<string, SafetensorsTensor> FindLayer(
        IReadOnlyDictionary<string, SafetensorsTensor> tensors, AttentionSpec spec, LayoutTensor[] wanted, string layerPrefix)
    {
        var found = new Dictionary<string, SafetensorsTensor>(StringComparer.Ordinal);
        foreach (LayoutTensor slot in wanted)
        {
            string name = layerPrefix + slot.Suffix;
            tensors.TryGetValue(name, out SafetensorsTensor? tensor);
            if (!slot.In(spec))
            {
                // Ignoring a bias the checkpoint has would silently give wrong outputs.
                string flag = slot.IsOutput && spec.HasOutputBias != spec.Bias ? "spec.output_bias" : "spec.bias";
                if (tensor is not null)
                    throw HeadwiseException.Invalid(
                        $"{flag} is false but tensor '{EchoedValue.Of(name)}' exists; expected {flag} true for this checkpoint.");
                continue;
            }
            string expected = SafetensorsTensor.FormatShape(slot.Shape);
            if (tensor is null)
                throw HeadwiseException.Invalid($"tensor '{EchoedValue.Of(name)}' is missing; expected {expected}.");
            if (tensor.DType is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16))
                throw HeadwiseException.Invalid($"tensor '{EchoedValue.Of(name)}' has dtype {tensor.DType}; expected F32, F16 or BF16.");
            if (!tensor.Shape.AsSpan().SequenceEqual(slot.Shape))
                throw HeadwiseException.Invalid($"tensor '{EchoedValue.Of(name)}' has shape {tensor.ShapeText}; expected {expected}.");
            found.Add(slot.Suffix, tensor);
        }
        return found;
    }

    /// <summary>
    /// GPT-2 Conv1D: attn [D, 3D] holds W_Q | W_K | W_V as column blocks, head h at columns h·dh .. (h+1)·dh of
    /// each; proj [D, D] is W_O as is. The layout has one head per group.
    /// </summary>
    private static LayerWeights SplitGpt2(int layer, AttentionSpec spec, float[] attn, float[]? attnBias, float[] proj, float[]? projBias)
    {
        int d = spec.ModelDim, dh = spec.HeadDim, width = spec.GroupSize * dh;
        var groups = new GroupWeights[spec.GroupCount];
        for (int k = 0; k < groups.Length; k++)
        {
            int column = k * width;
            groups[k] = new GroupWeights
            {
                Group = k,
                Query = Bytes(MatrixBlocks.Take(attn, 3 * d, 0, d, column, width, transpose: false)),
                Key = Bytes(MatrixBlocks.Take(attn, 3 * d, 0, d, d + column, dh, transpose: false)),
                Value = Bytes(MatrixBlocks.Take(attn, 3 * d, 0, d, 2 * d + column, dh, transpose: false)),
                QueryBias = attnBias is null ? null : FloatBytes.ToBytes(attnBias.AsSpan(column, width)),
                KeyBias = attnBias is null ? null : FloatBytes.ToBytes(attnBias.AsSpan(d + column, dh)),
                ValueBias = attnBias is null ? null : FloatBytes.ToBytes(attnBias.AsSpan(2 * d + column, dh)),
                Output = Bytes(MatrixBlocks.Take(proj, d, column, width, 0, d, transpose: false)),
            };
        }
        return new LayerWeights { Layer = layer, Groups = groups, OutputBias = projBias is null ? null : Bytes(projBias) };
    }

    /// <summary>
    /// nn.Linear: q [Hq·dh, D], k and v [Hkv·dh, D], o [D, Hq·dh], each the transpose of the row-vector weight.
    /// Head h is rows h·dh .. (h+1)·dh of q; group k's key/value head is rows k·dh .. (k+1)·dh of k and v.
    /// </summary>
    private static LayerWeights SplitLinear(int layer, AttentionSpec spec, float[] q, float[] k, float[] v, float[] o,
        float[]? qBias, float[]? kBias, float[]? vBias, float[]? oBias)
    {
        int d = spec.ModelDim, dh = spec.HeadDim, width = spec.GroupSize * dh, queryWidth = spec.HeadCount * dh;
        var groups = new GroupWeights[spec.GroupCount];
        for (int g = 0; g < groups.Length; g++)
        {
            int queryRow = g * width, kvRow = g * dh;
            groups[g] = new GroupWeights
            {
                Group = g,
                Query = Bytes(MatrixBlocks.Take(q, d, queryRow, width, 0, d, transpose: true)),
                Key = Bytes(MatrixBlocks.Take(k, d, kvRow, dh, 0, d, transpose: true)),
                Value = Bytes(MatrixBlocks.Take(v, d, kvRow, dh, 0, d, transpose: true)),
                QueryBias = qBias is null ? null : FloatBytes.ToBytes(qBias.AsSpan(queryRow, width)),
                KeyBias = kBias is null ? null : FloatBytes.ToBytes(kBias.AsSpan(kvRow, dh)),
                ValueBias = vBias is null ? null : FloatBytes.ToBytes(vBias.AsSpan(kvRow, dh)),
                Output = Bytes(MatrixBlocks.Take(o, queryWidth, 0, d, queryRow, width, transpose: true)),
            };
        }
        return new LayerWeights { Layer = layer, Groups = groups, OutputBias = oBias is null ? null : Bytes(oBias) };
    }

    private static byte[] Bytes(float[] values) => FloatBytes.ToBytes(values);
}
