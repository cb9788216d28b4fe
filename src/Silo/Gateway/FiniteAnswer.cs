using System.Globalization;
using Headwise.Contracts;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Inputs are checked finite before a pass, but finite inputs near float32's limit (±3e38) overflow in X·W or Q·Kᵀ and
/// come out as NaN or infinity. Such an answer is refused as INVALID_ARGUMENT naming the overflow rather than returned
/// as a success; it costs one scan of the answer, small beside the pass that made it.
/// </summary>
internal static class FiniteAnswer
{
    /// <summary>Throws INVALID_ARGUMENT when any of <paramref name="answers"/> holds a NaN or infinity.</summary>
    public static void Require(string field, byte[] input, params byte[]?[] answers)
    {
        foreach (var answer in answers)
        {
            if (answer is null) continue;
            int bad = IndexOfNonFinite(FloatBytes.AsFloats(answer));
            if (bad < 0) continue;
            float largest = 0;
            foreach (float value in FloatBytes.AsFloats(input)) largest = Math.Max(largest, Math.Abs(value));
            throw new HeadwiseException(ErrorCode.InvalidArgument,
                $"{field}: the pass overflowed float32 (the answer holds a NaN or infinity at flat index {bad}; the input's " +
                $"largest magnitude is {largest.ToString("G3", CultureInfo.InvariantCulture)}); scale the input down.");
        }
    }

    private static int IndexOfNonFinite(ReadOnlySpan<float> values) => Kernels.MagnitudeScan.IndexOfAbove(values, float.MaxValue);
}
