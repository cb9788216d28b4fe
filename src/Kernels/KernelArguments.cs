namespace Headwise.Kernels;

/// <summary>
/// Shape checks shared by every kernel, so a wrong buffer fails the same way (naming the argument and the
/// size it needs) whichever kernel the silo picked. Buffers must have exactly the size of their shape:
/// a mismatch is almost always a shape bug, and callers with larger pooled buffers can slice.
/// </summary>
internal static class KernelArguments
{
    public static void CheckAttend(ReadOnlySpan<float> input, int batch, int tokens, ReadOnlySpan<int> lengths,
        HeadGroupWeights weights, Span<float> output, Span<float> attention)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var shape = weights.Shape;
        RequireLength(input.Length, (long)batch * tokens * shape.ModelDim, "[batch, tokens, D]", nameof(input));
        if (!lengths.IsEmpty)
            RequireLength(lengths.Length, batch, "[batch] or empty", nameof(lengths));
        RequireLength(output.Length, (long)batch * tokens * shape.QueryWidth, "[batch, tokens, g·dh]", nameof(output));
        if (!attention.IsEmpty)
            RequireLength(attention.Length, (long)batch * shape.QueryHeads * tokens * tokens, "[batch, g, tokens, tokens] or empty", nameof(attention));
    }

    public static void CheckKeys(int tokens, HeadGroupShape shape, Span<float> keys, Span<float> values)
    {
        RequireLength(keys.Length, (long)tokens * shape.HeadDim, "[tokens, dh]", nameof(keys));
        RequireLength(values.Length, (long)tokens * shape.HeadDim, "[tokens, dh]", nameof(values));
    }

    public static void CheckProject(ReadOnlySpan<float> input, int rows, int inner, ReadOnlySpan<float> weights, int outer,
        ReadOnlySpan<float> bias, Span<float> output)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(inner);
        ArgumentOutOfRangeException.ThrowIfNegative(outer);
        RequireLength(input.Length, (long)rows * inner, "[rows, inner]", nameof(input));
        RequireLength(weights.Length, (long)inner * outer, "[inner, outer]", nameof(weights));
        if (!bias.IsEmpty)
            RequireLength(bias.Length, outer, "[outer] or empty", nameof(bias));
        RequireLength(output.Length, (long)rows * outer, "[rows, outer]", nameof(output));
    }

    private static void RequireLength(int actual, long expected, string shape, string name)
    {
        if (actual != expected)
            throw new ArgumentException($"{name} has {actual} values; its shape {shape} needs {expected}.", name);
    }
}
