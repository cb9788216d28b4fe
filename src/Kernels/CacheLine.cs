namespace Headwise.Kernels;

/// <summary>
/// 64-byte alignment (one cache line, one Vector512): an AVX-512 load that straddles two lines costs two, so every
/// scratch and panel a kernel streams starts on a line. Buffers are rented with <see cref="SlackFloats"/> extra floats
/// so the aligned start still has their whole length behind it.
/// </summary>
internal static unsafe class CacheLine
{
    public const int Bytes = 64;
    /// <summary>Floats to rent beyond a buffer's length so that its first aligned float still leaves the length.</summary>
    public const int SlackFloats = Bytes / sizeof(float);

    /// <summary>The first 64-byte aligned float at or after <paramref name="start"/>.</summary>
    public static float* Align(float* start) => (float*)(((nint)start + (Bytes - 1)) & ~(nint)(Bytes - 1));

    /// <summary>Floats from <paramref name="start"/> to its first 64-byte aligned float (0 to 15).</summary>
    public static int OffsetFloats(float* start) => (int)(Align(start) - start);

    /// <summary>
    /// A zeroed array on the pinned heap (it never moves, so a kernel may keep a pointer into it) with room for
    /// <paramref name="length"/> floats from <c>Origin</c>, its first float on a 64-byte line.
    /// </summary>
    public static (float[] Array, int Origin) AllocatePinned(int length)
    {
        var array = GC.AllocateArray<float>(length + SlackFloats, pinned: true);
        return (array, OffsetFloats((float*)System.Runtime.CompilerServices.Unsafe.AsPointer(
            ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(array))));
    }
}
