namespace Headwise.Contracts;

/// <summary>
/// Deterministic random weights for a spec: every value normal(0, std), drawn from System.Random(seed) with
/// the Box-Muller transform. The demo model and the tests use them; the same spec and seed always give the
/// same bytes.
/// </summary>
public static class SeededWeights
{
    /// <summary>
    /// Weights for every layer of <paramref name="spec"/>, biases too when it has them. Draw order: per layer,
    /// per group: W_Q, W_K, W_V, (b_Q, b_K, b_V,) W_O rows; then the layer's b_O.
    /// </summary>
    public static LayerWeights[] Create(AttentionSpec spec, int seed, float std = 0.02f)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec = spec.Resolve();
        if (!float.IsFinite(std) || std < 0)
            throw HeadwiseException.Invalid($"std is {std}; expected a finite, non-negative standard deviation.");
        long d = spec.ModelDim, dh = spec.HeadDim, width = (long)spec.GroupSize * spec.HeadDim;
        if (d * width * sizeof(float) > Array.MaxLength)
            throw HeadwiseException.Invalid(
                $"spec.model_dim {d} × the group width {width} is too large for one array; expected a smaller spec.");

        var normal = new NormalSampler(seed, std);
        var layers = new LayerWeights[spec.LayerCount];
        for (int layer = 0; layer < layers.Length; layer++)
        {
            var groups = new GroupWeights[spec.GroupCount];
            for (int g = 0; g < groups.Length; g++)
            {
                byte[] query = normal.Bytes(d * width), key = normal.Bytes(d * dh), value = normal.Bytes(d * dh);
                byte[]? queryBias = spec.Bias ? normal.Bytes(width) : null;
                byte[]? keyBias = spec.Bias ? normal.Bytes(dh) : null;
                byte[]? valueBias = spec.Bias ? normal.Bytes(dh) : null;
                groups[g] = new GroupWeights
                {
                    Group = g,
                    Query = query,
                    Key = key,
                    Value = value,
                    QueryBias = queryBias,
                    KeyBias = keyBias,
                    ValueBias = valueBias,
                    Output = normal.Bytes(width * d),
                };
            }
            layers[layer] = new LayerWeights { Layer = layer, Groups = groups, OutputBias = spec.HasOutputBias ? normal.Bytes(d) : null };
        }
        return layers;
    }

    /// <summary>Box-Muller over System.Random: each pair of uniforms gives two normals, both used.</summary>
    private sealed class NormalSampler(int seed, float std)
    {
        private readonly Random _random = new(seed);
        private double? _spare;

        public byte[] Bytes(long count)
        {
            var values = new float[count];
            for (long i = 0; i < values.LongLength; i++)
                values[i] = (float)(std * Next());
            return FloatBytes.ToBytes(values);
        }

        private double Next()
        {
            if (_spare is { } spare)
            {
                _spare = null;
                return spare;
            }
            double u1 = 1.0 - _random.NextDouble(); // in (0, 1], so the log is finite
            double u2 = _random.NextDouble();
            double radius = Math.Sqrt(-2.0 * Math.Log(u1));
            _spare = radius * Math.Sin(2.0 * Math.PI * u2);
            return radius * Math.Cos(2.0 * Math.PI * u2);
        }
    }
}
