namespace Headwise.Kernels;

/// <summary>Turns a configured <see cref="KernelKind"/> into a kernel; the silo calls it once at start.</summary>
public static class HeadKernels
{
    /// <summary>A kernel of the given kind. Kernels are stateless and safe to share between grains.</summary>
    public static IHeadKernel Create(KernelKind kind) => kind switch
    {
        KernelKind.Reference => new ReferenceKernel(),
        KernelKind.Simd => new SimdKernel(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, $"No kernel of kind {kind}."),
    };
}
