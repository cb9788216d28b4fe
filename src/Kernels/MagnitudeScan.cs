using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Headwise.Kernels;

/// <summary>
/// Finds the first value whose magnitude is not at most a bound (NaN included). The gateway checks every request's X
/// and every answer's Y this way: 3 MB each at T = 1024, which a scalar loop read at ~1 element per cycle.
/// </summary>
public static class MagnitudeScan
{
    /// <summary>The index of the first value v with !(|v| ≤ <paramref name="bound"/>), or −1; a bound of
    /// <see cref="float.MaxValue"/> finds the first NaN or infinity.</summary>
    public static int IndexOfAbove(ReadOnlySpan<float> values, float bound)
    {
        ref float start = ref MemoryMarshal.GetReference(values);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var limit = Vector512.Create(bound);
            for (; i <= values.Length - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var inside = Vector512.LessThanOrEqual(Vector512.Abs(Vector512.LoadUnsafe(ref start, (nuint)i)), limit);
                if (inside.ExtractMostSignificantBits() != 0xFFFFul) return i + FirstClear((uint)inside.ExtractMostSignificantBits());
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var limit = Vector256.Create(bound);
            for (; i <= values.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var inside = Vector256.LessThanOrEqual(Vector256.Abs(Vector256.LoadUnsafe(ref start, (nuint)i)), limit);
                if (inside.ExtractMostSignificantBits() != 0xFFu) return i + FirstClear(inside.ExtractMostSignificantBits());
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            var limit = Vector128.Create(bound);
            for (; i <= values.Length - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                var inside = Vector128.LessThanOrEqual(Vector128.Abs(Vector128.LoadUnsafe(ref start, (nuint)i)), limit);
                if (inside.ExtractMostSignificantBits() != 0xFu) return i + FirstClear(inside.ExtractMostSignificantBits());
            }
        }
        for (; i < values.Length; i++)
        {
            if (!(Math.Abs(values[i]) <= bound)) return i;
        }
        return -1;
    }

    private static int FirstClear(uint insideBits) => System.Numerics.BitOperations.TrailingZeroCount(~insideBits);
}
