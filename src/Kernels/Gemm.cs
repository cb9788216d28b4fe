using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Headwise.Kernels;

/// <summary>
/// C += A·B in float32 with a register-blocked micro-kernel: a block of 4 rows × 2 vectors of C stays in
/// registers for the whole inner loop, so each step loads 2 vectors of B and 4 scalars of A for 8 FMAs.
/// Columns that do not fill the widest vector fall through to the next narrower width, then to scalar code,
/// so odd sizes (dh = 17, D = 65) are exact and no column is ever read past its row.
/// </summary>
/// <remarks>
/// Every operand carries its own row stride, which lets the attention kernel multiply a column window of
/// Kᵀ or a row window of V in place, without copying.
/// </remarks>
internal static class Gemm
{
    private const int RowBlock = 4;

    /// <summary>c[rows, columns] += a[rows, inner] · b[inner, columns].</summary>
    public static void MultiplyAccumulate(
        // a: [rows, inner], row i starts at i·aStride
        ReadOnlySpan<float> a, int aStride,
        // b: [inner, columns], row k starts at k·bStride
        ReadOnlySpan<float> b, int bStride,
        int rows, int inner, int columns,
        // c: [rows, columns], row i starts at i·cStride
        Span<float> c, int cStride,
        VectorWidth width)
    {
        if (rows <= 0 || inner <= 0 || columns <= 0) return;
        // The micro-kernels index without bounds checks, so the extents are checked once here.
        RequireExtent(a.Length, rows, aStride, inner, nameof(a));
        RequireExtent(b.Length, inner, bStride, columns, nameof(b));
        RequireExtent(c.Length, rows, cStride, columns, nameof(c));
        // Overlapping rows of C would make the result depend on the order of the blocks.
        if (rows > 1 && cStride < columns)
            throw new ArgumentException($"c's row stride {cStride} is shorter than its {columns} columns.", nameof(c));

        ref float aRef = ref MemoryMarshal.GetReference(a);
        ref float bRef = ref MemoryMarshal.GetReference(b);
        ref float cRef = ref MemoryMarshal.GetReference(c);
        int column = 0;
        if (width >= VectorWidth.Bits512)
            column = VectorColumns<Vector512Ops, Vector512<float>>(ref aRef, aStride, ref bRef, bStride, rows, inner, column, columns, ref cRef, cStride);
        if (width >= VectorWidth.Bits256)
            column = VectorColumns<Vector256Ops, Vector256<float>>(ref aRef, aStride, ref bRef, bStride, rows, inner, column, columns, ref cRef, cStride);
        if (width >= VectorWidth.Bits128)
            column = VectorColumns<Vector128Ops, Vector128<float>>(ref aRef, aStride, ref bRef, bStride, rows, inner, column, columns, ref cRef, cStride);
        ScalarColumns(ref aRef, aStride, ref bRef, bStride, rows, inner, column, columns, ref cRef, cStride);
    }

    private static void RequireExtent(int length, int rows, int stride, int rowLength, string name)
    {
        if (stride < 0 || (long)(rows - 1) * stride + rowLength > length)
            throw new ArgumentException($"{name} holds {length} values; {rows} rows of {rowLength} at stride {stride} need {(long)(rows - 1) * stride + rowLength}.", name);
    }

    /// <summary>Covers the columns from <paramref name="firstColumn"/> that fill whole vectors; returns the first column left over.</summary>
    private static int VectorColumns<TOps, TVector>(
        ref float a, int aStride, ref float b, int bStride, int rows, int inner, int firstColumn, int columns,
        ref float c, int cStride)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        int count = TOps.Count;
        int pairEnd = firstColumn + (columns - firstColumn) / (2 * count) * (2 * count);
        int vectorEnd = firstColumn + (columns - firstColumn) / count * count;
        if (vectorEnd == firstColumn) return firstColumn;

        int row = 0;
        for (; row + RowBlock <= rows; row += RowBlock)
        {
            ref float aRows = ref Unsafe.Add(ref a, (nint)row * aStride);
            ref float cRows = ref Unsafe.Add(ref c, (nint)row * cStride);
            int column = firstColumn;
            for (; column < pairEnd; column += 2 * count)
                Block4x2<TOps, TVector>(ref aRows, aStride, ref Unsafe.Add(ref b, column), bStride, inner, ref Unsafe.Add(ref cRows, column), cStride);
            if (column < vectorEnd)
                Block4x1<TOps, TVector>(ref aRows, aStride, ref Unsafe.Add(ref b, column), bStride, inner, ref Unsafe.Add(ref cRows, column), cStride);
        }
        for (; row < rows; row++)
        {
            ref float aRow = ref Unsafe.Add(ref a, (nint)row * aStride);
            ref float cRow = ref Unsafe.Add(ref c, (nint)row * cStride);
            int column = firstColumn;
            for (; column < pairEnd; column += 2 * count)
                Block1x2<TOps, TVector>(ref aRow, ref Unsafe.Add(ref b, column), bStride, inner, ref Unsafe.Add(ref cRow, column));
            if (column < vectorEnd)
                Block1x1<TOps, TVector>(ref aRow, ref Unsafe.Add(ref b, column), bStride, inner, ref Unsafe.Add(ref cRow, column));
        }
        return vectorEnd;
    }

    // a: 4 rows at aStride; b: [inner, 2 vectors] at bStride; c: 4 rows × 2 vectors at cStride.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block4x2<TOps, TVector>(ref float a, int aStride, ref float b, int bStride, int inner, ref float c, int cStride)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        nuint count = (nuint)TOps.Count;
        nuint c1 = (nuint)cStride, c2 = 2 * c1, c3 = 3 * c1;
        ref float a0 = ref a;
        ref float a1 = ref Unsafe.Add(ref a, aStride);
        ref float a2 = ref Unsafe.Add(ref a, 2 * (nint)aStride);
        ref float a3 = ref Unsafe.Add(ref a, 3 * (nint)aStride);
        TVector c00 = TOps.Load(ref c, 0), c01 = TOps.Load(ref c, count);
        TVector c10 = TOps.Load(ref c, c1), c11 = TOps.Load(ref c, c1 + count);
        TVector c20 = TOps.Load(ref c, c2), c21 = TOps.Load(ref c, c2 + count);
        TVector c30 = TOps.Load(ref c, c3), c31 = TOps.Load(ref c, c3 + count);
        for (int k = 0; k < inner; k++)
        {
            ref float bRow = ref Unsafe.Add(ref b, (nint)k * bStride);
            TVector b0 = TOps.Load(ref bRow, 0), b1 = TOps.Load(ref bRow, count);
            TVector x = TOps.Broadcast(Unsafe.Add(ref a0, k));
            c00 = TOps.MultiplyAdd(x, b0, c00); c01 = TOps.MultiplyAdd(x, b1, c01);
            x = TOps.Broadcast(Unsafe.Add(ref a1, k));
            c10 = TOps.MultiplyAdd(x, b0, c10); c11 = TOps.MultiplyAdd(x, b1, c11);
            x = TOps.Broadcast(Unsafe.Add(ref a2, k));
            c20 = TOps.MultiplyAdd(x, b0, c20); c21 = TOps.MultiplyAdd(x, b1, c21);
            x = TOps.Broadcast(Unsafe.Add(ref a3, k));
            c30 = TOps.MultiplyAdd(x, b0, c30); c31 = TOps.MultiplyAdd(x, b1, c31);
        }
        TOps.Store(c00, ref c, 0); TOps.Store(c01, ref c, count);
        TOps.Store(c10, ref c, c1); TOps.Store(c11, ref c, c1 + count);
        TOps.Store(c20, ref c, c2); TOps.Store(c21, ref c, c2 + count);
        TOps.Store(c30, ref c, c3); TOps.Store(c31, ref c, c3 + count);
    }

    // a: 4 rows at aStride; b: [inner, 1 vector] at bStride; c: 4 rows × 1 vector at cStride.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block4x1<TOps, TVector>(ref float a, int aStride, ref float b, int bStride, int inner, ref float c, int cStride)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        nuint c1 = (nuint)cStride, c2 = 2 * c1, c3 = 3 * c1;
        ref float a0 = ref a;
        ref float a1 = ref Unsafe.Add(ref a, aStride);
        ref float a2 = ref Unsafe.Add(ref a, 2 * (nint)aStride);
        ref float a3 = ref Unsafe.Add(ref a, 3 * (nint)aStride);
        TVector c0 = TOps.Load(ref c, 0), c1v = TOps.Load(ref c, c1), c2v = TOps.Load(ref c, c2), c3v = TOps.Load(ref c, c3);
        for (int k = 0; k < inner; k++)
        {
            TVector b0 = TOps.Load(ref Unsafe.Add(ref b, (nint)k * bStride), 0);
            c0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref a0, k)), b0, c0);
            c1v = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref a1, k)), b0, c1v);
            c2v = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref a2, k)), b0, c2v);
            c3v = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref a3, k)), b0, c3v);
        }
        TOps.Store(c0, ref c, 0); TOps.Store(c1v, ref c, c1); TOps.Store(c2v, ref c, c2); TOps.Store(c3v, ref c, c3);
    }

    // a: 1 row; b: [inner, 2 vectors] at bStride; c: 1 row × 2 vectors.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block1x2<TOps, TVector>(ref float a, ref float b, int bStride, int inner, ref float c)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        nuint count = (nuint)TOps.Count;
        TVector c0 = TOps.Load(ref c, 0), c1 = TOps.Load(ref c, count);
        for (int k = 0; k < inner; k++)
        {
            ref float bRow = ref Unsafe.Add(ref b, (nint)k * bStride);
            TVector x = TOps.Broadcast(Unsafe.Add(ref a, k));
            c0 = TOps.MultiplyAdd(x, TOps.Load(ref bRow, 0), c0);
            c1 = TOps.MultiplyAdd(x, TOps.Load(ref bRow, count), c1);
        }
        TOps.Store(c0, ref c, 0); TOps.Store(c1, ref c, count);
    }

    // a: 1 row; b: [inner, 1 vector] at bStride; c: 1 row × 1 vector.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block1x1<TOps, TVector>(ref float a, ref float b, int bStride, int inner, ref float c)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        TVector c0 = TOps.Load(ref c, 0);
        for (int k = 0; k < inner; k++)
            c0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref a, k)), TOps.Load(ref Unsafe.Add(ref b, (nint)k * bStride), 0), c0);
        TOps.Store(c0, ref c, 0);
    }

    /// <summary>The columns narrower than any vector (and all columns when SIMD is off), in i-k-j order so B is read along its rows.</summary>
    private static void ScalarColumns(ref float a, int aStride, ref float b, int bStride, int rows, int inner, int firstColumn, int columns,
        ref float c, int cStride)
    {
        if (firstColumn >= columns) return;
        for (int row = 0; row < rows; row++)
        {
            ref float aRow = ref Unsafe.Add(ref a, (nint)row * aStride);
            ref float cRow = ref Unsafe.Add(ref c, (nint)row * cStride);
            for (int k = 0; k < inner; k++)
            {
                float x = Unsafe.Add(ref aRow, k);
                ref float bRow = ref Unsafe.Add(ref b, (nint)k * bStride);
                for (int column = firstColumn; column < columns; column++)
                    Unsafe.Add(ref cRow, column) += x * Unsafe.Add(ref bRow, column);
            }
        }
    }
}
