using Headwise.Kernels;

namespace Headwise.Kernels.Tests;

public class MagnitudeScanTests
{
    // Lengths around every vector width's multiples, so both the vector body and the scalar tail are searched.
    public static TheoryData<int> Lengths => new() { 0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 100, 1000 };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Finds_the_first_value_beyond_the_bound_at_every_position(int length)
    {
        var random = new Random(length + 1);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * 10f;
        Assert.Equal(-1, MagnitudeScan.IndexOfAbove(values, 10f));

        float[] bad = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 10.5f, -10.5f];
        for (int position = 0; position < length; position++)
        {
            float poison = bad[position % bad.Length];
            var copy = (float[])values.Clone();
            copy[position] = poison;
            if (position + 1 < length) copy[length - 1] = float.NaN; // a later bad value must not win
            Assert.Equal(position, MagnitudeScan.IndexOfAbove(copy, 10f));
            Assert.Equal(ScalarIndex(copy, 10f), MagnitudeScan.IndexOfAbove(copy, 10f));
        }
    }

    [Fact]
    public void A_value_equal_to_the_bound_passes_and_MaxValue_bound_finds_only_non_finite()
    {
        float[] values = [1f, -3e38f, 3e38f, float.MaxValue, -float.MaxValue, 0f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f];
        Assert.Equal(-1, MagnitudeScan.IndexOfAbove(values, float.MaxValue));
        Assert.Equal(1, MagnitudeScan.IndexOfAbove(values, 1f));
        values[16] = float.PositiveInfinity;
        Assert.Equal(16, MagnitudeScan.IndexOfAbove(values, float.MaxValue));
        Assert.Equal(-1, MagnitudeScan.IndexOfAbove([12f, -12f], 12f));
    }

    private static int ScalarIndex(float[] values, float bound)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!(Math.Abs((double)values[i]) <= bound)) return i;
        }
        return -1;
    }
}
