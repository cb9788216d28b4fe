using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Headwise.Contracts;

/// <summary>
/// One tensor of a safetensors file: its name, dtype, shape and raw little-endian, row-major bytes. The bytes
/// are a slice of the file's memory, not a copy.
/// </summary>
public sealed class SafetensorsTensor
{
    internal SafetensorsTensor(string name, SafetensorsDType dtype, long[] shape, long elementCount, ReadOnlyMemory<byte> data)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        ElementCount = elementCount;
        Data = data;
    }

    public string Name { get; }

    public SafetensorsDType DType { get; }

    /// <summary>The dimensions, outermost first; empty for a scalar.</summary>
    public long[] Shape { get; }

    /// <summary>The raw bytes: <see cref="ElementCount"/> × the dtype's size, little-endian, row-major.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>The product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount { get; }

    /// <summary>The shape written as "[a, b]", as error messages show it.</summary>
    public string ShapeText => FormatShape(Shape);

    /// <summary>The values as float32; F32, F16 and BF16 are accepted.</summary>
    public float[] ToFloat32()
    {
        ReadOnlySpan<byte> bytes = Data.Span;
        switch (DType)
        {
            case SafetensorsDType.F32:
                if (BitConverter.IsLittleEndian)
                    return MemoryMarshal.Cast<byte, float>(bytes).ToArray();
                var f32 = new float[ElementCount];
                for (int i = 0; i < f32.Length; i++)
                    f32[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(4 * i)..]);
                return f32;
            case SafetensorsDType.F16:
                var f16 = new float[ElementCount];
                for (int i = 0; i < f16.Length; i++)
                    f16[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(2 * i)..]);
                return f16;
            case SafetensorsDType.BF16:
                // bf16 is the upper half of a float32: shift its 16 bits back into place.
                var bf16 = new float[ElementCount];
                for (int i = 0; i < bf16.Length; i++)
                    bf16[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]) << 16);
                return bf16;
            default:
                throw HeadwiseException.Invalid($"tensor '{Name}' has dtype {DType}; expected F32, F16 or BF16.");
        }
    }

    /// <summary>The values of an I32 tensor.</summary>
    public int[] ToInt32()
    {
        if (DType != SafetensorsDType.I32)
            throw HeadwiseException.Invalid($"tensor '{Name}' has dtype {DType}; expected I32.");
        ReadOnlySpan<byte> bytes = Data.Span;
        if (BitConverter.IsLittleEndian)
            return MemoryMarshal.Cast<byte, int>(bytes).ToArray();
        var values = new int[ElementCount];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]);
        return values;
    }

    public override string ToString() => $"{Name} {DType} {ShapeText}";

    /// <summary>start × the dimensions: −1 if a dimension is negative, <see cref="long.MaxValue"/> if it overflows.</summary>
    internal static long SaturatingProduct(ReadOnlySpan<long> shape, long start)
    {
        long product = start;
        foreach (long dim in shape)
        {
            if (dim < 0)
                return -1;
            product = dim == 0 ? 0 : product > long.MaxValue / dim ? long.MaxValue : product * dim;
        }
        return product;
    }

    internal static string FormatShape(ReadOnlySpan<long> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}
