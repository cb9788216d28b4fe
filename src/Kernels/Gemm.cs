using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Kernels;

/// <summary>
/// C (+)= A·B in float32, GotoBLAS-style: B is read as column panels of <see cref="PanelWidth"/> columns
/// (two vectors), laid out k-major so a panel's rows follow one another in memory; a block of rows of C × one
/// panel stays in registers for the whole inner loop (on Vector512 8 rows: 16 accumulators, each step 2 loads
/// of B and 8 broadcasts of A for 16 FMAs; on the 16-register widths 6 rows: 12 accumulators, 2 loads and 6
/// broadcasts for 12 FMAs). A is read in place, row by row, never packed: the
/// callers' A (tokens × D, or the attention's Q rows and probabilities) is already contiguous along k.
/// </summary>
/// <remarks>
/// Blocking: the inner dimension whole up to 768, else in slices of <see cref="InnerBlock"/> (A's 8-row slice
/// stays in L1 while the panels pass), the columns in blocks of <see cref="PanelsPerBlock"/> panels (B's
/// slice stays in L2 while every row block passes). A last panel narrower than
/// <see cref="PanelWidth"/> is zero-padded in B and computed into a small tile, so no odd size reads or
/// writes past its operands.
/// </remarks>
internal static unsafe class Gemm
{
    /// <summary>Rows of C per register block on Vector512 (the most of any width; see <see cref="RegisterRows{TOps,TVector}"/>).</summary>
    public const int RowBlock = 8;
    /// <summary>The deepest inner dimension taken in one slice (GPT-2's D = 768: C is loaded and stored once).</summary>
    public const int WholeInnerLimit = 768;
    /// <summary>The slice of a deeper inner dimension (D = 1600, 4096): B's 256 × 512 block stays in L2.</summary>
    public const int InnerBlock = 256;
    public const int PanelsPerBlock = 16;

    /// <summary>
    /// The k-slice for an inner dimension. Measured on the 2-core Xeon (bench `parts`, minimum of runs): the
    /// QKV GEMM at D = 768 took 1.73 ms in one 768-deep slice and 1.87 ms in 256-deep ones; W_O at D = 4096
    /// took 215 ms with 256 and 231–237 ms with 512 or 768.
    /// </summary>
    public static int InnerBlockFor(int inner) => inner <= WholeInnerLimit ? inner : InnerBlock;
    /// <summary>The widest panel of any width (Vector512: 2 × 16 lanes).</summary>
    public const int MaxPanelWidth = 32;

    /// <summary>Columns of one B panel at this width: two vectors (scalar code: two lanes).</summary>
    public static int PanelWidth(VectorWidth width) => width switch
    {
        VectorWidth.Bits512 => 2 * Vector512<float>.Count,
        VectorWidth.Bits256 => 2 * Vector256<float>.Count,
        VectorWidth.Bits128 => 2 * Vector128<float>.Count,
        _ => 2,
    };

    /// <summary>c[rows, columns] += a[rows, inner] · b[inner, columns], B read in place (the tests' and odd callers' entry).</summary>
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

        int panelWidth = PanelWidth(width);
        int tailColumns = columns % panelWidth;
        float[]? tailArray = tailColumns == 0 ? null : System.Buffers.ArrayPool<float>.Shared.Rent(inner * panelWidth);
        try
        {
            fixed (float* aPointer = a, bPointer = b, cPointer = c, tail = tailArray)
            {
                if (tail != null)
                    Pack(bPointer + (columns - tailColumns), bStride, inner, tailColumns, panelWidth, tail);
                var panels = Panels.InPlace(bPointer, bStride, inner, columns, panelWidth, tail);
                Multiply(width, aPointer, aStride, rows, inner, panels, cPointer, cStride, accumulate: true);
            }
        }
        finally
        {
            if (tailArray is not null) System.Buffers.ArrayPool<float>.Shared.Return(tailArray);
        }
    }

    private static void RequireExtent(int length, int rows, int stride, int rowLength, string name)
    {
        if (stride < 0 || (long)(rows - 1) * stride + rowLength > length)
            throw new ArgumentException($"{name} holds {length} values; {rows} rows of {rowLength} at stride {stride} need {(long)(rows - 1) * stride + rowLength}.", name);
    }

    /// <summary>
    /// Copies b[inner, columns] into panels of <paramref name="panelWidth"/> columns, each [inner × panelWidth]
    /// k-major, the last one zero-padded: destination holds ⌈columns / panelWidth⌉ · inner · panelWidth floats.
    /// </summary>
    public static void Pack(float* b, nint bStride, int inner, int columns, int panelWidth, float* destination)
    {
        int panelCount = (columns + panelWidth - 1) / panelWidth;
        for (int panel = 0; panel < panelCount; panel++)
        {
            int first = panel * panelWidth;
            int width = Math.Min(panelWidth, columns - first);
            float* target = destination + (nint)panel * inner * panelWidth;
            for (int k = 0; k < inner; k++)
            {
                float* source = b + k * bStride + first;
                float* row = target + (nint)k * panelWidth;
                new ReadOnlySpan<float>(source, width).CopyTo(new Span<float>(row, width));
                if (width < panelWidth) new Span<float>(row + width, panelWidth - width).Clear();
            }
        }
    }

    /// <summary>
    /// C (+)= A·B at the given width: with <paramref name="accumulate"/> C is added to; otherwise C is overwritten
    /// with A·B plus, when given, the row vector <paramref name="bias"/> [columns] (the accumulators start from it).
    /// </summary>
    public static void Multiply(VectorWidth width, float* a, nint aStride, int rows, int inner, in Panels b, float* c, nint cStride, bool accumulate,
        float* bias = null)
    {
        switch (width)
        {
            case VectorWidth.Bits512: Multiply<Vector512Ops, Vector512<float>>(a, aStride, rows, inner, b, c, cStride, accumulate, bias); break;
            case VectorWidth.Bits256: Multiply<Vector256Ops, Vector256<float>>(a, aStride, rows, inner, b, c, cStride, accumulate, bias); break;
            case VectorWidth.Bits128: Multiply<Vector128Ops, Vector128<float>>(a, aStride, rows, inner, b, c, cStride, accumulate, bias); break;
            default: Multiply<ScalarOps, float>(a, aStride, rows, inner, b, c, cStride, accumulate, bias); break;
        }
    }

    /// <summary>
    /// c[rows, b.Columns] (+)= a[rows, inner] · b[inner, b.Columns] (+ bias[b.Columns] in every row when not accumulating).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply<TOps, TVector>(
        // a: [rows, inner] at aStride
        float* a, nint aStride, int rows, int inner,
        // b: [inner, columns] as panels
        in Panels b,
        // c: [rows, columns] at cStride
        float* c, nint cStride, bool accumulate, float* bias = null)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        int panelWidth = 2 * TOps.Count;
        int columns = b.Columns;
        if (rows <= 0 || columns <= 0) return;
        if (accumulate) bias = null;
        if (inner <= 0)
        {
            if (!accumulate)
                for (int row = 0; row < rows; row++)
                {
                    var cRow = new Span<float>(c + row * cStride, columns);
                    if (bias == null) cRow.Clear();
                    else new ReadOnlySpan<float>(bias, columns).CopyTo(cRow);
                }
            return;
        }

        // B read in place has rows far apart (W_O: 16 KB at D = 4096, which maps a panel's rows onto a few cache
        // sets); with enough rows to share the copy, each block of B is packed first (cost ≈ 2 / rows of the work).
        bool pack = !b.IsPacked && rows >= PackRowThreshold;
        int innerBlock = InnerBlockFor(inner);
        float[]? packArray = pack ? System.Buffers.ArrayPool<float>.Shared.Rent(innerBlock * PanelsPerBlock * MaxPanelWidth + CacheLine.SlackFloats) : null;
        try
        {
        fixed (float* packStart = packArray)
        {
        float* packed = CacheLine.Align(packStart);
        float* tile = stackalloc float[RowBlock * MaxPanelWidth];
        int panelCount = b.PanelCount;
        int rowStep = RegisterRows<TOps, TVector>();
        for (int firstPanel = 0; firstPanel < panelCount; firstPanel += PanelsPerBlock)
        {
            int endPanel = Math.Min(panelCount, firstPanel + PanelsPerBlock);
            for (int k0 = 0; k0 < inner; k0 += innerBlock)
            {
                int innerCount = Math.Min(innerBlock, inner - k0);
                bool add = accumulate || k0 > 0;
                if (pack)
                    for (int panel = firstPanel; panel < endPanel; panel++)
                        CopyPanel<TOps, TVector>(b.Panel(panel) + k0 * b.RowStride(panel), b.RowStride(panel), innerCount,
                            packed + (nint)(panel - firstPanel) * innerCount * panelWidth);
                for (int row = 0; row < rows; row += rowStep)
                {
                    int rowCount = Math.Min(rowStep, rows - row);
                    float* aBlock = a + row * aStride + k0;
                    float* cBlock = c + row * cStride;
                    for (int panel = firstPanel; panel < endPanel; panel++)
                    {
                        nint bStride = pack ? panelWidth : b.RowStride(panel);
                        float* bPanel = pack ? packed + (nint)(panel - firstPanel) * innerCount * panelWidth : b.Panel(panel) + k0 * bStride;
                        int firstColumn = panel * panelWidth;
                        int width = Math.Min(panelWidth, columns - firstColumn);
                        if (width == panelWidth)
                        {
                            // The accumulators start from C (adding), from the bias row (first slice of k), or from zero.
                            float* cTile = cBlock + firstColumn;
                            if (add) Tile<TOps, TVector>(rowCount, aBlock, aStride, bPanel, bStride, innerCount, cTile, cStride, cTile, cStride);
                            else Tile<TOps, TVector>(rowCount, aBlock, aStride, bPanel, bStride, innerCount, cTile, cStride, bias == null ? null : bias + firstColumn, 0);
                            continue;
                        }
                        // The narrow last panel: through a full-width tile, so nothing past C's columns is touched.
                        for (int r = 0; r < rowCount; r++)
                        {
                            var tileRow = new Span<float>(tile + r * panelWidth, panelWidth);
                            tileRow.Clear();
                            if (add) new ReadOnlySpan<float>(cBlock + r * cStride + firstColumn, width).CopyTo(tileRow);
                            else if (bias != null) new ReadOnlySpan<float>(bias + firstColumn, width).CopyTo(tileRow);
                        }
                        Tile<TOps, TVector>(rowCount, aBlock, aStride, bPanel, bStride, innerCount, tile, panelWidth, accumulate: true);
                        for (int r = 0; r < rowCount; r++)
                            new ReadOnlySpan<float>(tile + r * panelWidth, width).CopyTo(new Span<float>(cBlock + r * cStride + firstColumn, width));
                    }
                }
            }
        }
        }
        }
        finally
        {
            if (packArray is not null) System.Buffers.ArrayPool<float>.Shared.Return(packArray);
        }
    }

    /// <summary>Rows of A from which <see cref="Multiply{TOps,TVector}"/> packs an in-place B block before using it.</summary>
    public const int PackRowThreshold = 32;

    /// <summary>One panel's rows [inner × 2 vectors], from rows at <paramref name="stride"/> to contiguous ones.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyPanel<TOps, TVector>(float* source, nint stride, int inner, float* destination)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        nint n = TOps.Count;
        for (int k = 0; k < inner; k++)
        {
            TOps.Store(TOps.Load(source), destination);
            TOps.Store(TOps.Load(source + n), destination + n);
            source += stride;
            destination += 2 * n;
        }
    }

    /// <summary>
    /// Rows of C that <see cref="Multiply{TOps,TVector}"/> keeps in registers per panel: 8 on Vector512 (32 registers:
    /// 16 accumulators), 6 on the narrower widths (AVX2 and SSE have 16: 12 accumulators, 2 of B, 1 broadcast; the
    /// 6 × 16 block of BLIS's Haswell kernel). Twelve independent FMA chains cover an FMA latency of 5 cycles on
    /// 2 ports (Haswell, Zen 2), which the 4-row block's 8 chains could not (80% at best).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int RegisterRows<TOps, TVector>()
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct =>
        TOps.Count == 16 ? RowBlock : 6;

    /// <summary>
    /// Rows of C × one panel: c[rows, panelWidth] (+)= a[rows, inner] · b[inner, panelWidth]. Vector512 runs
    /// 8 rows as its 8-row block; narrower widths run 6-row blocks (<see cref="RegisterRows{TOps,TVector}"/>: the
    /// GEMM's step is 6 rows, the attention's 12); what is left runs as a 4-row block and single rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Tile<TOps, TVector>(int rows, float* a, nint aStride, float* b, nint bStride, int inner, float* c, nint cStride, bool accumulate)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct =>
        Tile<TOps, TVector>(rows, a, aStride, b, bStride, inner, c, cStride, accumulate ? c : null, accumulate ? cStride : 0);

    /// <summary>
    /// The same with the accumulators starting from <paramref name="initial"/> (rows at <paramref name="initialStride"/>;
    /// stride 0 repeats one row, a bias) or from zero when it is null.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Tile<TOps, TVector>(int rows, float* a, nint aStride, float* b, nint bStride, int inner, float* c, nint cStride,
        float* initial, nint initialStride)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        if (rows == RowBlock && TOps.Count == 16)
        {
            Block8<TOps, TVector>(a, aStride, b, bStride, inner, c, cStride, initial, initialStride);
            return;
        }
        int row = 0;
        if (TOps.Count != 16)
            for (; row + 6 <= rows; row += 6)
                Block6<TOps, TVector>(a + row * aStride, aStride, b, bStride, inner, c + row * cStride, cStride,
                    initial == null ? null : initial + row * initialStride, initialStride);
        for (; row + 4 <= rows; row += 4)
            Block4<TOps, TVector>(a + row * aStride, aStride, b, bStride, inner, c + row * cStride, cStride,
                initial == null ? null : initial + row * initialStride, initialStride);
        for (; row < rows; row++)
            Block1<TOps, TVector>(a + row * aStride, b, bStride, inner, c + row * cStride, initial == null ? null : initial + row * initialStride);
    }

    // a: 8 rows at aStride; b: [inner, 2 vectors] at bStride; c: 8 rows × 2 vectors at cStride, starting from
    // initial (rows at s) or zero.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Block8<TOps, TVector>(float* a, nint aStride, float* b, nint bStride, int inner, float* c, nint cStride,
        float* initial, nint s)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        nint n = TOps.Count;
        TVector c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        if (initial != null)
        {
            float* i = initial;
            c00 = TOps.Load(i); c01 = TOps.Load(i + n);
            c10 = TOps.Load(i + s); c11 = TOps.Load(i + s + n);
            c20 = TOps.Load(i + 2 * s); c21 = TOps.Load(i + 2 * s + n);
            c30 = TOps.Load(i + 3 * s); c31 = TOps.Load(i + 3 * s + n);
            c40 = TOps.Load(i + 4 * s); c41 = TOps.Load(i + 4 * s + n);
            c50 = TOps.Load(i + 5 * s); c51 = TOps.Load(i + 5 * s + n);
            c60 = TOps.Load(i + 6 * s); c61 = TOps.Load(i + 6 * s + n);
            c70 = TOps.Load(i + 7 * s); c71 = TOps.Load(i + 7 * s + n);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = TOps.Zero;
            c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = TOps.Zero;
        }
        float* a0 = a, a1 = a + aStride, a2 = a + 2 * aStride, a3 = a + 3 * aStride;
        float* a4 = a + 4 * aStride, a5 = a + 5 * aStride, a6 = a + 6 * aStride, a7 = a + 7 * aStride;
        for (nint k = 0, count = inner; k < count; k++)
        {
            TVector b0 = TOps.Load(b), b1 = TOps.Load(b + n);
            b += bStride;
            TVector x = TOps.Broadcast(a0[k]);
            c00 = TOps.MultiplyAdd(x, b0, c00); c01 = TOps.MultiplyAdd(x, b1, c01);
            x = TOps.Broadcast(a1[k]);
            c10 = TOps.MultiplyAdd(x, b0, c10); c11 = TOps.MultiplyAdd(x, b1, c11);
            x = TOps.Broadcast(a2[k]);
            c20 = TOps.MultiplyAdd(x, b0, c20); c21 = TOps.MultiplyAdd(x, b1, c21);
            x = TOps.Broadcast(a3[k]);
            c30 = TOps.MultiplyAdd(x, b0, c30); c31 = TOps.MultiplyAdd(x, b1, c31);
            x = TOps.Broadcast(a4[k]);
            c40 = TOps.MultiplyAdd(x, b0, c40); c41 = TOps.MultiplyAdd(x, b1, c41);
            x = TOps.Broadcast(a5[k]);
            c50 = TOps.MultiplyAdd(x, b0, c50); c51 = TOps.MultiplyAdd(x, b1, c51);
            x = TOps.Broadcast(a6[k]);
            c60 = TOps.MultiplyAdd(x, b0, c60); c61 = TOps.MultiplyAdd(x, b1, c61);
            x = TOps.Broadcast(a7[k]);
            c70 = TOps.MultiplyAdd(x, b0, c70); c71 = TOps.MultiplyAdd(x, b1, c71);
        }
        TOps.Store(c00, c); TOps.Store(c01, c + n);
        TOps.Store(c10, c + cStride); TOps.Store(c11, c + cStride + n);
        TOps.Store(c20, c + 2 * cStride); TOps.Store(c21, c + 2 * cStride + n);
        TOps.Store(c30, c + 3 * cStride); TOps.Store(c31, c + 3 * cStride + n);
        TOps.Store(c40, c + 4 * cStride); TOps.Store(c41, c + 4 * cStride + n);
        TOps.Store(c50, c + 5 * cStride); TOps.Store(c51, c + 5 * cStride + n);
        TOps.Store(c60, c + 6 * cStride); TOps.Store(c61, c + 6 * cStride + n);
        TOps.Store(c70, c + 7 * cStride); TOps.Store(c71, c + 7 * cStride + n);
    }

    // a: 6 rows at aStride; b: [inner, 2 vectors] at bStride; c: 6 rows × 2 vectors at cStride, from initial or zero.
    // 15 of the 16 registers of AVX2/SSE: 12 accumulators, the 2 vectors of B, 1 broadcast of A.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Block6<TOps, TVector>(float* a, nint aStride, float* b, nint bStride, int inner, float* c, nint cStride,
        float* initial, nint s)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        nint n = TOps.Count;
        TVector c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        if (initial != null)
        {
            float* i = initial;
            c00 = TOps.Load(i); c01 = TOps.Load(i + n);
            c10 = TOps.Load(i + s); c11 = TOps.Load(i + s + n);
            c20 = TOps.Load(i + 2 * s); c21 = TOps.Load(i + 2 * s + n);
            c30 = TOps.Load(i + 3 * s); c31 = TOps.Load(i + 3 * s + n);
            c40 = TOps.Load(i + 4 * s); c41 = TOps.Load(i + 4 * s + n);
            c50 = TOps.Load(i + 5 * s); c51 = TOps.Load(i + 5 * s + n);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = TOps.Zero;
            c30 = c31 = c40 = c41 = c50 = c51 = TOps.Zero;
        }
        float* a0 = a, a1 = a + aStride, a2 = a + 2 * aStride, a3 = a + 3 * aStride, a4 = a + 4 * aStride, a5 = a + 5 * aStride;
        for (nint k = 0, count = inner; k < count; k++)
        {
            TVector b0 = TOps.Load(b), b1 = TOps.Load(b + n);
            b += bStride;
            TVector x = TOps.Broadcast(a0[k]);
            c00 = TOps.MultiplyAdd(x, b0, c00); c01 = TOps.MultiplyAdd(x, b1, c01);
            x = TOps.Broadcast(a1[k]);
            c10 = TOps.MultiplyAdd(x, b0, c10); c11 = TOps.MultiplyAdd(x, b1, c11);
            x = TOps.Broadcast(a2[k]);
            c20 = TOps.MultiplyAdd(x, b0, c20); c21 = TOps.MultiplyAdd(x, b1, c21);
            x = TOps.Broadcast(a3[k]);
            c30 = TOps.MultiplyAdd(x, b0, c30); c31 = TOps.MultiplyAdd(x, b1, c31);
            x = TOps.Broadcast(a4[k]);
            c40 = TOps.MultiplyAdd(x, b0, c40); c41 = TOps.MultiplyAdd(x, b1, c41);
            x = TOps.Broadcast(a5[k]);
            c50 = TOps.MultiplyAdd(x, b0, c50); c51 = TOps.MultiplyAdd(x, b1, c51);
        }
        TOps.Store(c00, c); TOps.Store(c01, c + n);
        TOps.Store(c10, c + cStride); TOps.Store(c11, c + cStride + n);
        TOps.Store(c20, c + 2 * cStride); TOps.Store(c21, c + 2 * cStride + n);
        TOps.Store(c30, c + 3 * cStride); TOps.Store(c31, c + 3 * cStride + n);
        TOps.Store(c40, c + 4 * cStride); TOps.Store(c41, c + 4 * cStride + n);
        TOps.Store(c50, c + 5 * cStride); TOps.Store(c51, c + 5 * cStride + n);
    }

    // a: 4 rows at aStride; b: [inner, 2 vectors] at bStride; c: 4 rows × 2 vectors at cStride, from initial or zero.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Block4<TOps, TVector>(float* a, nint aStride, float* b, nint bStride, int inner, float* c, nint cStride,
        float* initial, nint s)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        nint n = TOps.Count;
        TVector c00, c01, c10, c11, c20, c21, c30, c31;
        if (initial != null)
        {
            float* i = initial;
            c00 = TOps.Load(i); c01 = TOps.Load(i + n);
            c10 = TOps.Load(i + s); c11 = TOps.Load(i + s + n);
            c20 = TOps.Load(i + 2 * s); c21 = TOps.Load(i + 2 * s + n);
            c30 = TOps.Load(i + 3 * s); c31 = TOps.Load(i + 3 * s + n);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = TOps.Zero;
        }
        float* a0 = a, a1 = a + aStride, a2 = a + 2 * aStride, a3 = a + 3 * aStride;
        for (nint k = 0, count = inner; k < count; k++)
        {
            TVector b0 = TOps.Load(b), b1 = TOps.Load(b + n);
            b += bStride;
            TVector x = TOps.Broadcast(a0[k]);
            c00 = TOps.MultiplyAdd(x, b0, c00); c01 = TOps.MultiplyAdd(x, b1, c01);
            x = TOps.Broadcast(a1[k]);
            c10 = TOps.MultiplyAdd(x, b0, c10); c11 = TOps.MultiplyAdd(x, b1, c11);
            x = TOps.Broadcast(a2[k]);
            c20 = TOps.MultiplyAdd(x, b0, c20); c21 = TOps.MultiplyAdd(x, b1, c21);
            x = TOps.Broadcast(a3[k]);
            c30 = TOps.MultiplyAdd(x, b0, c30); c31 = TOps.MultiplyAdd(x, b1, c31);
        }
        TOps.Store(c00, c); TOps.Store(c01, c + n);
        TOps.Store(c10, c + cStride); TOps.Store(c11, c + cStride + n);
        TOps.Store(c20, c + 2 * cStride); TOps.Store(c21, c + 2 * cStride + n);
        TOps.Store(c30, c + 3 * cStride); TOps.Store(c31, c + 3 * cStride + n);
    }

    // a: 1 row; b: [inner, 2 vectors] at bStride; c: 1 row × 2 vectors. Four partial sums per vector, so
    // a lone row (a decode step) waits on load bandwidth rather than on the FMA latency of one chain.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Block1<TOps, TVector>(float* a, float* b, nint bStride, int inner, float* c, float* initial)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        nint n = TOps.Count;
        TVector c0 = initial != null ? TOps.Load(initial) : TOps.Zero;
        TVector c1 = initial != null ? TOps.Load(initial + n) : TOps.Zero;
        TVector d0 = TOps.Zero, d1 = TOps.Zero, e0 = TOps.Zero, e1 = TOps.Zero, f0 = TOps.Zero, f1 = TOps.Zero;
        nint k = 0;
        for (; k + 4 <= inner; k += 4)
        {
            TVector x = TOps.Broadcast(a[k]);
            c0 = TOps.MultiplyAdd(x, TOps.Load(b), c0);
            c1 = TOps.MultiplyAdd(x, TOps.Load(b + n), c1);
            x = TOps.Broadcast(a[k + 1]);
            d0 = TOps.MultiplyAdd(x, TOps.Load(b + bStride), d0);
            d1 = TOps.MultiplyAdd(x, TOps.Load(b + bStride + n), d1);
            x = TOps.Broadcast(a[k + 2]);
            e0 = TOps.MultiplyAdd(x, TOps.Load(b + 2 * bStride), e0);
            e1 = TOps.MultiplyAdd(x, TOps.Load(b + 2 * bStride + n), e1);
            x = TOps.Broadcast(a[k + 3]);
            f0 = TOps.MultiplyAdd(x, TOps.Load(b + 3 * bStride), f0);
            f1 = TOps.MultiplyAdd(x, TOps.Load(b + 3 * bStride + n), f1);
            b += 4 * bStride;
        }
        for (; k < inner; k++)
        {
            TVector x = TOps.Broadcast(a[k]);
            c0 = TOps.MultiplyAdd(x, TOps.Load(b), c0);
            c1 = TOps.MultiplyAdd(x, TOps.Load(b + n), c1);
            b += bStride;
        }
        TOps.Store(TOps.Add(TOps.Add(c0, d0), TOps.Add(e0, f0)), c);
        TOps.Store(TOps.Add(TOps.Add(c1, d1), TOps.Add(e1, f1)), c + n);
    }
}

/// <summary>
/// Where the column panels of a B operand are: full panels at <c>first + p·panelStride</c> with row stride
/// <c>rowStride</c> (packed: [inner × width] blocks; in place: the matrix itself), and an optional last,
/// narrower panel already packed and zero-padded to the full width.
/// </summary>
internal readonly unsafe struct Panels
{
    private readonly float* first;
    private readonly nint panelStride;
    private readonly nint rowStride;
    private readonly int fullPanels;
    private readonly float* tail;
    private readonly nint tailRowStride;

    private Panels(float* first, nint panelStride, nint rowStride, int fullPanels, float* tail, nint tailRowStride, int columns)
    {
        this.first = first; this.panelStride = panelStride; this.rowStride = rowStride;
        this.fullPanels = fullPanels; this.tail = tail; this.tailRowStride = tailRowStride; Columns = columns;
    }

    /// <summary>Columns of B.</summary>
    public int Columns { get; }
    /// <summary>Whether every panel's rows are contiguous (packed), rather than rows of the matrix where it lies.</summary>
    public bool IsPacked => rowStride == tailRowStride || fullPanels == 0;
    public int PanelCount => fullPanels + (tail != null ? 1 : 0);
    public float* Panel(int panel) => panel < fullPanels ? first + panel * panelStride : tail;
    public nint RowStride(int panel) => panel < fullPanels ? rowStride : tailRowStride;

    /// <summary>B packed by <see cref="Gemm.Pack"/>.</summary>
    public static Panels Packed(float* packed, int inner, int columns, int panelWidth)
    {
        int full = columns / panelWidth;
        nint stride = (nint)inner * panelWidth;
        return new Panels(packed, stride, panelWidth, full, columns % panelWidth == 0 ? null : packed + full * stride, panelWidth, columns);
    }

    /// <summary>B read where it lies (row k at k·bStride); the narrow last panel, if any, packed into <paramref name="tail"/>.</summary>
    public static Panels InPlace(float* b, nint bStride, int inner, int columns, int panelWidth, float* tail) =>
        new(b, panelWidth, bStride, columns / panelWidth, columns % panelWidth == 0 ? null : tail, panelWidth, columns);
}
