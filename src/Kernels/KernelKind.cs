namespace Headwise.Kernels;

/// <summary>The kernels a silo can run its heads on (configuration names them by these values).</summary>
public enum KernelKind
{
    /// <summary><see cref="ReferenceKernel"/>: float64 loops, the oracle; slow.</summary>
    Reference,

    /// <summary><see cref="SimdKernel"/>: float32 on the CPU's widest SIMD registers.</summary>
    Simd,

    /// <summary><see cref="GpuKernel"/>: ILGPU on the first CUDA device, or on ILGPU's (slow) CPU accelerator when there is none.</summary>
    Gpu,

    /// <summary>The silo's default: <see cref="Gpu"/> when a CUDA device can be opened, else <see cref="Simd"/>.</summary>
    Auto,
}
