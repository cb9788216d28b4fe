namespace Headwise.Contracts;

/// <summary>
/// Copies rectangular blocks between row-major matrices, optionally transposed: how a layout's full
/// projections become a head group's pieces, and back.
/// </summary>
internal static class MatrixBlocks
{
    /// <summary>
    /// source[r0 .. r0+rows, c0 .. c0+cols] → a new [rows × cols] matrix, or its transpose [cols × rows].
    /// </summary>
    // source: [? × sourceCols]
    public static float[] Take(ReadOnlySpan<float> source, int sourceCols, int r0, int rows, int c0, int cols, bool transpose)
    {
        var block = new float[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> sourceRow = source.Slice((r0 + r) * sourceCols + c0, cols);
            if (!transpose)
            {
                sourceRow.CopyTo(block.AsSpan(r * cols, cols));
                continue;
            }
            for (int c = 0; c < cols; c++)
                block[c * rows + r] = sourceRow[c];
        }
        return block;
    }

    /// <summary>
    /// The inverse of <see cref="Take"/>: writes block [rows × cols] (or, when transposed, block [cols × rows])
    /// into target[r0 .. r0+rows, c0 .. c0+cols].
    /// </summary>
    // target: [? × targetCols]
    public static void Put(ReadOnlySpan<float> block, Span<float> target, int targetCols, int r0, int rows, int c0, int cols, bool transpose)
    {
        for (int r = 0; r < rows; r++)
        {
            Span<float> targetRow = target.Slice((r0 + r) * targetCols + c0, cols);
            if (!transpose)
            {
                block.Slice(r * cols, cols).CopyTo(targetRow);
                continue;
            }
            for (int c = 0; c < cols; c++)
                targetRow[c] = block[c * rows + r];
        }
    }
}
