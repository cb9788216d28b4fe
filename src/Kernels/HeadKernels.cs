namespace Headwise.Kernels;

/// <summary>Turns a configured <see cref="KernelKind"/> into a kernel; the silo calls it once at start.</summary>
public static class HeadKernels
{
    /// <summary>
    /// A kernel of the given kind, safe to share between grains (the SIMD kernel runs calls side by side; the
    /// GPU kernel queues them on its one device stream). <see cref="KernelKind.Auto"/> opens the first CUDA
    /// device if there is one and falls back to <see cref="SimdKernel"/>; the returned kernel's
    /// <see cref="IHeadKernel.Name"/> says which it got.
    /// </summary>
    public static IHeadKernel Create(KernelKind kind) => kind switch
    {
        KernelKind.Reference => new ReferenceKernel(),
        KernelKind.Simd => new SimdKernel(),
        KernelKind.Gpu => GpuKernel.Create(),
        KernelKind.Auto => (IHeadKernel?)GpuKernel.TryCreateCuda() ?? new SimdKernel(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, $"No kernel of kind {kind}."),
    };
}
