using System.Numerics.Tensors;

namespace Headwise.Kernels;

/// <summary>The numerically stable softmax of one row of scores, in place, on TensorPrimitives' SIMD code.</summary>
internal static class Softmax
{
    /// <summary>
    /// Subtracting the row's maximum first keeps every exponent ≤ 0, so no score overflows and the sum is
    /// at least 1 (the maximum contributes e⁰); the caller passes only visible keys, so none is −∞.
    /// </summary>
    // scores: [keys], at least one
    public static void InPlace(Span<float> scores)
    {
        float max = TensorPrimitives.Max(scores);
        TensorPrimitives.Subtract(scores, max, scores);
        TensorPrimitives.Exp(scores, scores);
        float sum = TensorPrimitives.Sum(scores);
        TensorPrimitives.Multiply(scores, 1f / sum, scores);
    }
}
