namespace Headwise.Kernels.Tests;

/// <summary>
/// Project (the coordinator's W_O) against a naive float64 matrix product, including sizes large enough
/// to be split over threads. Tolerance as in <see cref="TensorAssert"/>.
/// </summary>
public class ProjectTests
{
    [Theory]
    // seed, rows, inner, outer, bias, weight std
    [InlineData(1, 1, 1, 1, false, 0.1)]
    [InlineData(2, 3, 5, 7, true, 0.1)]
    [InlineData(3, 9, 33, 65, true, 0.02)]
    [InlineData(4, 31, 130, 96, false, 0.02)]
    [InlineData(5, 100, 64, 17, true, 0.1)]
    [InlineData(6, 2, 0, 3, true, 0.1)]     // no inner dimension: y is the bias
    [InlineData(7, 128, 192, 130, true, 0.02)] // 3.2M multiply-adds: split over threads
    [InlineData(8, 67, 256, 100, false, 0.1)]  // 1.7M, rows not a multiple of the thread count
    public void Matches_a_naive_float64_product(int seed, int rows, int inner, int outer, bool bias, double weightStd)
    {
        var random = new Random(seed);
        var x = RandomTensors.Normal(random, rows * inner);
        var w = RandomTensors.Normal(random, inner * outer, weightStd);
        float[]? b = bias ? RandomTensors.Normal(random, outer, weightStd) : null;
        var product = NaiveMath.MatMul(x, rows, inner, w, outer, b);
        var expected = new float[rows * outer];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < outer; j++)
                expected[i * outer + j] = (float)product[i, j];

        var kernels = new List<IHeadKernel> { new ReferenceKernel() };
        kernels.AddRange(SimdKernelTests.Widths().Select(width => new SimdKernel(width)));
        foreach (var kernel in kernels)
        {
            var y = new float[rows * outer];
            y.AsSpan().Fill(float.NaN);
            kernel.Project(x, rows, inner, w, outer, b, y);
            TensorAssert.Close(expected, y, $"{kernel.Name} y");
        }
    }

    [Fact]
    public void Large_projections_are_split_and_small_ones_run_inline()
    {
        Assert.Equal(1, KernelParallelism.PartCount(rows: 16, workPerRow: 768 * 64));
        int expectedParts = Math.Min(Environment.ProcessorCount, 128);
        Assert.Equal(expectedParts, KernelParallelism.PartCount(rows: 128, workPerRow: 768 * 768));
        Assert.Equal(1, KernelParallelism.PartCount(rows: 1, workPerRow: 1 << 30));
    }

    [Fact]
    public void Row_ranges_cover_every_row_exactly_once()
    {
        const int rows = 101;
        var hits = new int[rows];
        KernelParallelism.ForRowRanges(rows, workPerRow: 1 << 20, hits, static (hits, start, end) =>
        {
            for (int row = start; row < end; row++) Interlocked.Increment(ref hits[row]);
        });
        Assert.All(hits, count => Assert.Equal(1, count));
    }
}
