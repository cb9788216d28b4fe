using System.Runtime.InteropServices;

namespace Headwise.Contracts;

/// <summary>bfloat16, the top half of a float32: what X and Z become on the wire when a request allows it.</summary>
public static class Bf16
{
    /// <summary>Rounds each float to the nearest bfloat16 (ties to even) and returns the little-endian bytes.</summary>
    public static byte[] Encode(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * sizeof(ushort)];
        var destination = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
        for (int i = 0; i < values.Length; i++)
        {
            uint bits = BitConverter.SingleToUInt32Bits(values[i]);
            uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
            destination[i] = (ushort)((bits + roundingBias) >> 16);
        }
        return bytes;
    }

    /// <summary>Widens little-endian bfloat16 bytes to float32 into <paramref name="destination"/>.</summary>
    public static void Decode(ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        var source = MemoryMarshal.Cast<byte, ushort>(bytes);
        if (source.Length != destination.Length)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"bf16 data holds {source.Length} values; {destination.Length} were expected.");
        for (int i = 0; i < source.Length; i++)
            destination[i] = BitConverter.Int32BitsToSingle(source[i] << 16);
    }

    /// <summary>Widens little-endian bfloat16 bytes to float32 bytes.</summary>
    public static byte[] DecodeToFloatBytes(ReadOnlySpan<byte> bytes)
    {
        var result = new byte[bytes.Length * 2];
        Decode(bytes, FloatBytes.AsFloats(result.AsSpan()));
        return result;
    }
}
