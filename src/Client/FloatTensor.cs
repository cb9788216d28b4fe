namespace Headwise.Client;

/// <summary>A row-major float32 tensor: <see cref="Data"/> holds the product of <see cref="Shape"/> values.</summary>
public sealed record FloatTensor
{
    /// <summary>Wraps <paramref name="data"/>; throws when its length does not match the shape.</summary>
    public FloatTensor(ReadOnlyMemory<float> data, params int[] shape)
    {
        long count = 1;
        foreach (int size in shape)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(size, nameof(shape));
            count *= size;
        }
        if (count != data.Length)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] holds {count} values, data has {data.Length}.", nameof(data));
        Data = data;
        Shape = shape;
    }

    /// <summary>The values, row-major.</summary>
    public ReadOnlyMemory<float> Data { get; }

    /// <summary>The sizes of the dimensions, outermost first.</summary>
    public int[] Shape { get; }
}
