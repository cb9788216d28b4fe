using Xunit;

namespace Headwise.TestSupport;

/// <summary>
/// The golden README's bounds for a float32 implementation against a float64 reference: max abs error ≤ 1e-4
/// and relative Frobenius error ≤ 1e-5 (plain float32 libtorch stays 25× inside them).
/// </summary>
public static class Tolerance
{
    public const double MaxAbs = 1e-4;
    public const double RelativeFrobenius = 1e-5;

    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what,
        double maxAbs = MaxAbs, double relativeFrobenius = RelativeFrobenius)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} values, expected {expected.Length}.");
        double worst = 0, diffSquares = 0, refSquares = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double difference = Math.Abs((double)actual[i] - expected[i]);
            if (!(difference <= worst)) { worst = difference; worstAt = i; }
            diffSquares += difference * difference;
            refSquares += (double)expected[i] * expected[i];
        }
        double relative = refSquares == 0 ? Math.Sqrt(diffSquares) : Math.Sqrt(diffSquares / refSquares);
        Assert.True(worst <= maxAbs && relative <= relativeFrobenius,
            $"{what}: max abs error {worst:E2} at {worstAt} (bound {maxAbs:E0}), relative Frobenius {relative:E2} (bound {relativeFrobenius:E0}).");
    }
}
