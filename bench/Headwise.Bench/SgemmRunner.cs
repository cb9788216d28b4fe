using System.Diagnostics;

namespace Headwise.Bench;

/// <summary>
/// OpenBLAS's own sgemm (1024 × 1024 × 1024, one thread), best of 5, with the core type it loaded with:
/// HEADWISE_OPENBLAS_CORETYPE=Prescott|Haswell|SkylakeX… compares its kernels on this machine.
/// </summary>
internal static unsafe class SgemmRunner
{
    public static int Run()
    {
        if (!OpenBlas.TryLoad())
        {
            Console.WriteLine(OpenBlas.LoadError);
            return 1;
        }
        const int n = 1024;
        var a = new float[n * n];
        var b = new float[n * n];
        var c = new float[n * n];
        for (int i = 0; i < a.Length; i++) { a[i] = i % 7 * 0.1f; b[i] = i % 5 * 0.1f; }
        double best = 0;
        fixed (float* pa = a, pb = b, pc = c)
        {
            for (int r = 0; r < 6; r++)
            {
                long started = Stopwatch.GetTimestamp();
                OpenBlas.Sgemm(n, n, n, 1, pa, n, pb, n, false, 0, pc, n);
                double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                if (r > 0) best = Math.Max(best, 2.0 * n * n * n / seconds / 1e9);
            }
        }
        Console.WriteLine($"OpenBLAS core {OpenBlas.CoreName} ({OpenBlas.CoreTypeSource}): sgemm 1024³ on 1 thread {best:F0} GFLOP/s; load {TableRunner.LoadAverage()}");
        return 0;
    }
}
