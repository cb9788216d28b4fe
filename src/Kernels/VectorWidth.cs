using System.Runtime.Intrinsics;

namespace Headwise.Kernels;

/// <summary>
/// The widest SIMD register a kernel may use. The best one is picked once from the hardware; tests force
/// the narrower ones so the fallbacks stay correct on machines without AVX-512 or without SIMD at all.
/// </summary>
internal enum VectorWidth
{
    Scalar = 0,
    Bits128 = 128,
    Bits256 = 256,
    Bits512 = 512,
}

internal static class VectorWidths
{
    /// <summary>The widest width this process runs in hardware (the JIT reports it; emulated widths are slower than scalar code).</summary>
    public static VectorWidth Best { get; } =
        Vector512.IsHardwareAccelerated ? VectorWidth.Bits512
        : Vector256.IsHardwareAccelerated ? VectorWidth.Bits256
        : Vector128.IsHardwareAccelerated ? VectorWidth.Bits128
        : VectorWidth.Scalar;
}
