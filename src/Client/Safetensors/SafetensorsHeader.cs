namespace Headwise.Contracts;

/// <summary>A safetensors file's parsed JSON header: each tensor's dtype, shape and byte range in the data, and the metadata.</summary>
public sealed record SafetensorsHeader(IReadOnlyList<SafetensorsRange> Tensors, IReadOnlyDictionary<string, string> Metadata);

/// <summary>One tensor as the header names it: <see cref="Begin"/>..<see cref="End"/> are offsets into the data section.</summary>
public sealed record SafetensorsRange(string Name, SafetensorsDType DType, long[] Shape, long ElementCount, long Begin, long End)
{
    public long Length => End - Begin;

    /// <summary>The tensor with its bytes (exactly <see cref="Length"/> of them).</summary>
    public SafetensorsTensor WithData(ReadOnlyMemory<byte> data) =>
        data.Length == Length
            ? new SafetensorsTensor(Name, DType, Shape, ElementCount, data)
            : throw new ArgumentException($"tensor '{Name}' has {Length} bytes, not {data.Length}.", nameof(data));

    /// <summary>The tensor's name, dtype and shape, for checks before its bytes are there.</summary>
    public SafetensorsTensor WithoutData() => new(Name, DType, Shape, ElementCount, ReadOnlyMemory<byte>.Empty);
}
