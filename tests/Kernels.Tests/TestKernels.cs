namespace Headwise.Kernels.Tests;

/// <summary>
/// Kernels by kind for tests. The GPU kernel is one shared instance on ILGPU's CPU accelerator (or the
/// machine's CUDA device): compiling its device code takes a moment, so tests do not each make their own.
/// </summary>
internal static class TestKernels
{
    private static readonly Lazy<GpuKernel> gpu = new(GpuKernel.Create);

    public static GpuKernel Gpu => gpu.Value;

    public static IHeadKernel Create(KernelKind kind) => kind == KernelKind.Gpu ? Gpu : HeadKernels.Create(kind);
}
