using Headwise.Contracts;

namespace Headwise.Grains.Forward;

/// <summary>
/// The gather step of a forward pass that gathers Z at its coordinator: the groups' Z side by side in one
/// [rows, Hq·dh] buffer (the Concat that W_O multiplies), and the per-head views a request may ask for.
/// </summary>
public static class HeadGather
{
    /// <summary>concat: [B·T, Hq·dh]; group g's Z fills columns g·g_width..(g+1)·g_width.</summary>
    public static void Concatenate(IReadOnlyList<GroupAnswer> groups, int rows, AttentionSpec spec, Span<float> concat)
    {
        int groupWidth = spec.GroupSize * spec.HeadDim;
        int concatWidth = spec.HeadCount * spec.HeadDim;
        for (int g = 0; g < groups.Count; g++)
        {
            var z = FloatBytes.AsFloats(groups[g].Output);
            for (int row = 0; row < rows; row++)
                z.Slice(row * groupWidth, groupWidth).CopyTo(concat.Slice(row * concatWidth + g * groupWidth, groupWidth));
        }
    }

    /// <summary>[B, Hq, T, T] from each group's [B, g, T, T].</summary>
    public static byte[] Attention(IReadOnlyList<GroupAnswer> groups, int batch, int tokens, AttentionSpec spec)
    {
        int block = spec.GroupSize * tokens * tokens;
        var attention = new byte[batch * spec.HeadCount * tokens * tokens * sizeof(float)];
        var destination = FloatBytes.AsFloats(attention.AsSpan());
        for (int g = 0; g < groups.Count; g++)
        {
            var source = FloatBytes.AsFloats(groups[g].Attention);
            for (int b = 0; b < batch; b++)
                source.Slice(b * block, block).CopyTo(destination.Slice((b * spec.GroupCount + g) * block, block));
        }
        return attention;
    }

    /// <summary>[B, Hq, T, dh] from each group's Z [B·T, g·dh].</summary>
    public static byte[] SplitHeads(IReadOnlyList<GroupAnswer> groups, int batch, int tokens, AttentionSpec spec)
    {
        int rows = batch * tokens;
        var concat = new float[rows * spec.HeadCount * spec.HeadDim];
        Concatenate(groups, rows, spec, concat);
        return SplitHeads(concat, batch, tokens, spec);
    }

    /// <summary>[B, Hq, T, dh] from concat [B·T, Hq·dh].</summary>
    public static byte[] SplitHeads(ReadOnlySpan<float> concat, int batch, int tokens, AttentionSpec spec)
    {
        int headDim = spec.HeadDim, concatWidth = spec.HeadCount * headDim;
        var headOutputs = new byte[batch * spec.HeadCount * tokens * headDim * sizeof(float)];
        var destination = FloatBytes.AsFloats(headOutputs.AsSpan());
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < spec.HeadCount; h++)
                for (int t = 0; t < tokens; t++)
                    concat.Slice((b * tokens + t) * concatWidth + h * headDim, headDim)
                        .CopyTo(destination.Slice(((b * spec.HeadCount + h) * tokens + t) * headDim, headDim));
        return headOutputs;
    }
}
