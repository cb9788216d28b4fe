namespace Headwise.Kernels;

/// <summary>
/// One head group's projection weights in the row-vector convention Q = X·W_Q + b_Q.
/// Query head k of the group owns columns k·dh..(k+1)·dh of <see cref="Query"/>.
/// </summary>
public sealed class HeadGroupWeights
{
    public HeadGroupWeights(HeadGroupShape shape, float[] query, float[] key, float[] value,
        float[]? queryBias = null, float[]? keyBias = null, float[]? valueBias = null)
    {
        Shape = shape;
        Require(query, shape.ModelDim * shape.QueryWidth, nameof(query));
        Require(key, shape.ModelDim * shape.HeadDim, nameof(key));
        Require(value, shape.ModelDim * shape.HeadDim, nameof(value));
        if (queryBias is not null) Require(queryBias, shape.QueryWidth, nameof(queryBias));
        if (keyBias is not null) Require(keyBias, shape.HeadDim, nameof(keyBias));
        if (valueBias is not null) Require(valueBias, shape.HeadDim, nameof(valueBias));
        Query = query; Key = key; Value = value;
        QueryBias = queryBias; KeyBias = keyBias; ValueBias = valueBias;
    }

    public HeadGroupShape Shape { get; }
    /// <summary>[D × g·dh]</summary>
    public float[] Query { get; }
    /// <summary>[D × dh]</summary>
    public float[] Key { get; }
    /// <summary>[D × dh]</summary>
    public float[] Value { get; }
    /// <summary>[g·dh], or null for no bias.</summary>
    public float[]? QueryBias { get; }
    /// <summary>[dh], or null for no bias.</summary>
    public float[]? KeyBias { get; }
    /// <summary>[dh], or null for no bias.</summary>
    public float[]? ValueBias { get; }

    private static void Require(float[] array, int length, string name)
    {
        if (array.Length != length)
            throw new ArgumentException($"{name} has {array.Length} values; the shape needs {length}.", name);
    }
}
