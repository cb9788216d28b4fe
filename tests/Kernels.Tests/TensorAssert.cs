namespace Headwise.Kernels.Tests;

/// <summary>
/// Compares a float32 kernel's output with the float64 oracle's. The bounds are those of the golden
/// vectors' README: max abs error ≤ 1e-4 and relative Frobenius error ‖y − ref‖ / ‖ref‖ ≤ 1e-5 (plain
/// float32 libtorch reaches about 4e-7 on the same cases). Per-element relative error is not used:
/// many values are near zero.
/// </summary>
internal static class TensorAssert
{
    public const double MaxAbsError = 1e-4;
    public const double RelativeFrobeniusError = 1e-5;

    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what,
        double maxAbsError = MaxAbsError, double relativeFrobeniusError = RelativeFrobeniusError)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxAbs = 0, differenceSquares = 0, expectedSquares = 0;
        int worst = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.False(float.IsNaN(actual[i]) || float.IsInfinity(actual[i]), $"{what}: element {i} is {actual[i]}");
            double difference = (double)actual[i] - expected[i];
            differenceSquares += difference * difference;
            expectedSquares += (double)expected[i] * expected[i];
            if (Math.Abs(difference) > maxAbs) { maxAbs = Math.Abs(difference); worst = i; }
        }
        // An all-zero reference (every row masked) must be matched exactly in the Frobenius sense too.
        double relative = expectedSquares == 0 ? Math.Sqrt(differenceSquares) : Math.Sqrt(differenceSquares / expectedSquares);
        Assert.True(maxAbs <= maxAbsError,
            $"{what}: max abs error {maxAbs:E2} at {worst} (expected {(worst >= 0 ? expected[worst] : 0)}, got {(worst >= 0 ? actual[worst] : 0)}) exceeds {maxAbsError:E0}");
        Assert.True(relative <= relativeFrobeniusError,
            $"{what}: relative Frobenius error {relative:E2} exceeds {relativeFrobeniusError:E0}");
    }
}
