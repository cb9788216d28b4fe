using System.Runtime.InteropServices;

namespace Headwise.Contracts;

/// <summary>
/// Floats on the wire are little-endian float32 bytes; these views cost nothing on little-endian hosts,
/// which is every platform .NET runs Orleans on.
/// </summary>
public static class FloatBytes
{
    public static ReadOnlySpan<float> AsFloats(ReadOnlySpan<byte> bytes) => MemoryMarshal.Cast<byte, float>(bytes);

    public static Span<float> AsFloats(Span<byte> bytes) => MemoryMarshal.Cast<byte, float>(bytes);

    public static byte[] ToBytes(ReadOnlySpan<float> floats) => MemoryMarshal.AsBytes(floats).ToArray();

    public static float[] ToFloats(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % sizeof(float) != 0)
            throw HeadwiseException.Invalid($"float32 data has {bytes.Length} bytes, not a multiple of 4.");
        return MemoryMarshal.Cast<byte, float>(bytes).ToArray();
    }
}
