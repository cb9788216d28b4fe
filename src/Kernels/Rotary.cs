namespace Headwise.Kernels;

/// <summary>
/// Rotary position embedding (RoPE) in the Hugging Face "rotate half" convention of Llama and OLMo: the first
/// <see cref="Dim"/> dimensions of each head are split into halves (a, b) and, at absolute position p with
/// angle_i = p · inv_freq_i, inv_freq_i = θ^(−2i/Dim) for i in 0..Dim/2 (stretched by <see cref="Scaling"/>), become
/// (a·cos − b·sin, b·cos + a·sin); the rest pass through.
/// Applied to Q and K rows in place; a kernel that wants RoPE calls it between the projection and the scores.
/// Angles are computed in float64 so that position 4000 is as exact as position 4.
/// </summary>
/// <param name="Theta">The base θ (10000 in Llama); 0 means no RoPE.</param>
/// <param name="Dim">Leading dimensions of each head that rotate; even, at most dh.</param>
/// <param name="Scaling">Hugging Face rope_scaling of the frequencies; default none.</param>
public readonly record struct Rotary(float Theta, int Dim, RotaryScaling Scaling = default)
{
    /// <summary>inv_freq_i for i in 0 … Dim/2 − 1, in float64: what every kernel's angles come from.</summary>
    public double[] InverseFrequencies() => Scaling.InverseFrequencies(Theta, Dim);

    /// <summary>No rotation.</summary>
    public static Rotary None => default;

    public bool IsEnabled => Theta > 0 && Dim > 0;

    /// <summary>Rotates every head of every row in place; row t sits at absolute position firstPosition + t.</summary>
    public void Apply(
        // rows: [tokens, heads·headDim]
        Span<float> rows, int tokens, int heads, int headDim, int firstPosition)
    {
        if (rows.Length != tokens * heads * headDim)
            throw new ArgumentException($"rows has {rows.Length} values; [tokens, heads·headDim] needs {tokens * heads * headDim}.", nameof(rows));
        Apply(rows, heads * headDim, tokens, heads, headDim, firstPosition);
    }

    /// <summary>
    /// The same over rows <paramref name="stride"/> floats apart (Q or K columns inside a wider [tokens × (g+2)·dh]
    /// projection): row t's heads start at t·stride.
    /// </summary>
    public void Apply(Span<float> rows, int stride, int tokens, int heads, int headDim, int firstPosition)
    {
        if (!IsEnabled || tokens == 0) return;
        if (Dim % 2 != 0 || Dim > headDim)
            throw new ArgumentException($"rotary dim {Dim} must be even and at most the head width {headDim}.", nameof(headDim));
        if (stride < heads * headDim || (long)(tokens - 1) * stride + heads * headDim > rows.Length)
            throw new ArgumentException($"rows has {rows.Length} values; {tokens} rows of {heads * headDim} at stride {stride} do not fit.", nameof(rows));

        int half = Dim / 2;
        var table = RotaryTable.For(this, firstPosition + tokens);
        for (int token = 0; token < tokens; token++)
        {
            var cos = table.Cos(firstPosition + token);
            var sin = table.Sin(firstPosition + token);
            for (int head = 0; head < heads; head++)
            {
                var vector = rows.Slice(token * stride + head * headDim, Dim);
                for (int i = 0; i < half; i++)
                {
                    float a = vector[i], b = vector[i + half];
                    vector[i] = a * cos[i] - b * sin[i];
                    vector[i + half] = b * cos[i] + a * sin[i];
                }
            }
        }
    }
}
