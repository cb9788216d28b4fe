using System.Runtime.InteropServices;

namespace Headwise.Kernels;

/// <summary>
/// Floats on the pinned object heap, 64-byte aligned (one cache line, one Vector512), so a kernel can keep a
/// raw pointer to them for as long as it holds this object.
/// </summary>
internal sealed unsafe class PinnedFloats
{
    private readonly float[] storage;

    public PinnedFloats(int length)
    {
        Length = length;
        (storage, int origin) = CacheLine.AllocatePinned(length);
        Pointer = (float*)Marshal.UnsafeAddrOfPinnedArrayElement(storage, origin);
    }

    public int Length { get; }
    /// <summary>The first float, 64-byte aligned; valid while this object is reachable (use GC.KeepAlive after the last use).</summary>
    public float* Pointer { get; }
    public Span<float> Span => new(Pointer, Length);
}

/// <summary>
/// One head group's W_Q, W_K, W_V side by side as one [D × (g+2)·dh] matrix — Q's g·dh columns, then K's dh,
/// then V's dh — packed into GEMM panels once, so a forward pass computes Q, K and V of a sequence in one
/// GEMM that reads each row of x once. The biases sit side by side the same way.
/// </summary>
internal sealed unsafe class PackedHeadGroup
{
    private PackedHeadGroup(HeadGroupShape shape, VectorWidth width, PinnedFloats panels, float[]? bias)
    {
        Shape = shape; Width = width; PanelStorage = panels; Bias = bias;
    }

    public HeadGroupShape Shape { get; }
    public VectorWidth Width { get; }
    /// <summary>(g+2)·dh: Q, K and V side by side.</summary>
    public int ProjectionWidth => Shape.QueryWidth + 2 * Shape.HeadDim;
    public PinnedFloats PanelStorage { get; }
    /// <summary>[(g+2)·dh], or null when the group has no bias at all.</summary>
    public float[]? Bias { get; }

    public Panels Panels => Kernels.Panels.Packed(PanelStorage.Pointer, Shape.ModelDim, ProjectionWidth, Gemm.PanelWidth(Width));

    public static PackedHeadGroup Create(HeadGroupWeights weights, VectorWidth width)
    {
        var shape = weights.Shape;
        int modelDim = shape.ModelDim, queryWidth = shape.QueryWidth, headDim = shape.HeadDim;
        int projectionWidth = queryWidth + 2 * headDim;
        var joined = new float[modelDim * projectionWidth]; // [D, (g+2)·dh]
        for (int row = 0; row < modelDim; row++)
        {
            var target = joined.AsSpan(row * projectionWidth, projectionWidth);
            weights.Query.AsSpan(row * queryWidth, queryWidth).CopyTo(target);
            weights.Key.AsSpan(row * headDim, headDim).CopyTo(target[queryWidth..]);
            weights.Value.AsSpan(row * headDim, headDim).CopyTo(target[(queryWidth + headDim)..]);
        }

        float[]? bias = null;
        if (weights.QueryBias is not null || weights.KeyBias is not null || weights.ValueBias is not null)
        {
            bias = new float[projectionWidth];
            weights.QueryBias?.CopyTo(bias, 0);
            weights.KeyBias?.CopyTo(bias, queryWidth);
            weights.ValueBias?.CopyTo(bias, queryWidth + headDim);
        }

        int panelWidth = Gemm.PanelWidth(width);
        int panelCount = (projectionWidth + panelWidth - 1) / panelWidth;
        var panels = new PinnedFloats(Math.Max(1, panelCount * modelDim * panelWidth));
        fixed (float* source = joined)
            Gemm.Pack(source, projectionWidth, modelDim, projectionWidth, panelWidth, panels.Pointer);
        return new PackedHeadGroup(shape, width, panels, bias);
    }
}
