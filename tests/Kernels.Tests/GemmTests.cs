namespace Headwise.Kernels.Tests;

/// <summary>
/// The micro-kernel on its own, with row strides wider than the rows (as the attention kernel uses it on
/// windows of Kᵀ and V): it must add onto C, touch no element outside its window, and handle every
/// split between full vector pairs, single vectors and scalar columns.
/// </summary>
public class GemmTests
{
    [Theory]
    // rows, inner, columns: odd counts land in every row block and column tail
    [InlineData(1, 1, 1)]
    [InlineData(3, 2, 5)]
    [InlineData(4, 7, 16)]
    [InlineData(5, 9, 33)]
    [InlineData(9, 17, 47)]
    [InlineData(8, 64, 64)]
    [InlineData(6, 5, 32)]     // one 6-row register block (the 16-register widths)
    [InlineData(11, 19, 48)]   // 6 + 4 + 1 rows there, 8 + 2 + 1 on Vector512
    [InlineData(13, 3, 100)]
    [InlineData(40, 300, 70)]  // enough rows to pack B's blocks; a narrow last panel
    [InlineData(34, 800, 40)]  // inner deeper than one slice (768): C carried across 256-deep slices
    [InlineData(33, 257, 600)] // more panels than one column block holds
    public void Adds_the_product_inside_its_window_only(int rows, int inner, int columns)
    {
        const int padding = 3; // extra columns on every row of every operand
        var random = new Random(rows * 10000 + inner * 100 + columns);
        int aStride = inner + padding, bStride = columns + padding, cStride = columns + padding;
        var a = RandomTensors.Normal(random, rows * aStride);
        var b = RandomTensors.Normal(random, inner * bStride);
        var initial = RandomTensors.Normal(random, rows * cStride);

        foreach (var width in SimdKernelTests.Widths())
        {
            var c = (float[])initial.Clone();
            Gemm.MultiplyAccumulate(a, aStride, b, bStride, rows, inner, columns, c, cStride, width);

            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cStride; j++)
                {
                    double expected = initial[i * cStride + j];
                    if (j < columns)
                        for (int k = 0; k < inner; k++)
                            expected += (double)a[i * aStride + k] * b[k * bStride + j];
                    Assert.True(Math.Abs(expected - c[i * cStride + j]) <= 1e-5 * (1 + inner),
                        $"{width}: c[{i},{j}] = {c[i * cStride + j]}, expected {expected}");
                }
        }
    }

    [Fact]
    public void Rejects_operands_too_short_for_their_shape()
    {
        var exception = Assert.Throws<ArgumentException>(() =>
            Gemm.MultiplyAccumulate(new float[5], 3, new float[9], 3, 2, 3, 3, new float[6], 3, VectorWidth.Scalar));
        Assert.Equal("a", exception.ParamName);
    }
}
