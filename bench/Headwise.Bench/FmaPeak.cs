using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Headwise.Bench;

/// <summary>
/// The machine's measured float32 FMA ceiling: independent chains of fused multiply-adds on the widest
/// vectors the kernels use, with no memory traffic, on one thread and on every core at once.
/// </summary>
internal static class FmaPeak
{
    private const int Chains = 24; // more than latency × FMA ports, so the chains never wait on each other

    /// <summary>GFLOP/s (2 per lane per FMA) of <paramref name="threads"/> threads; the best of a few runs.</summary>
    public static double Measure(int threads, int repeats = 5)
    {
        double best = 0;
        for (int r = 0; r < repeats; r++)
        {
            const long iterations = 20_000_000;
            var barrier = new Barrier(threads);
            var workers = new Thread[threads];
            long started = 0;
            for (int t = 0; t < threads; t++)
            {
                workers[t] = new Thread(() =>
                {
                    barrier.SignalAndWait();
                    if (Interlocked.CompareExchange(ref started, Stopwatch.GetTimestamp(), 0) == 0) { }
                    Sink = Run(iterations);
                });
                workers[t].Start();
            }
            foreach (var worker in workers) worker.Join();
            double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            double flops = 2.0 * Vector512<float>.Count * Chains * iterations * threads;
            if (!Vector512.IsHardwareAccelerated) flops = 2.0 * Vector256<float>.Count * Chains * iterations * threads;
            best = Math.Max(best, flops / seconds / 1e9);
        }
        return best;
    }

    public static float Sink;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Run(long iterations) =>
        Vector512.IsHardwareAccelerated ? Run512(iterations) : Run256(iterations);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Run512(long iterations)
    {
        var a = Vector512.Create(0.999999f);
        var b = Vector512.Create(1e-7f);
        Vector512<float> c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
        Vector512<float> d0 = a, d1 = a, d2 = a, d3 = a, d4 = a, d5 = a, d6 = a, d7 = a, d8 = a, d9 = a, d10 = a, d11 = a;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, a, b); c1 = Vector512.FusedMultiplyAdd(c1, a, b);
            c2 = Vector512.FusedMultiplyAdd(c2, a, b); c3 = Vector512.FusedMultiplyAdd(c3, a, b);
            c4 = Vector512.FusedMultiplyAdd(c4, a, b); c5 = Vector512.FusedMultiplyAdd(c5, a, b);
            c6 = Vector512.FusedMultiplyAdd(c6, a, b); c7 = Vector512.FusedMultiplyAdd(c7, a, b);
            c8 = Vector512.FusedMultiplyAdd(c8, a, b); c9 = Vector512.FusedMultiplyAdd(c9, a, b);
            c10 = Vector512.FusedMultiplyAdd(c10, a, b); c11 = Vector512.FusedMultiplyAdd(c11, a, b);
            d0 = Vector512.FusedMultiplyAdd(d0, a, b); d1 = Vector512.FusedMultiplyAdd(d1, a, b);
            d2 = Vector512.FusedMultiplyAdd(d2, a, b); d3 = Vector512.FusedMultiplyAdd(d3, a, b);
            d4 = Vector512.FusedMultiplyAdd(d4, a, b); d5 = Vector512.FusedMultiplyAdd(d5, a, b);
            d6 = Vector512.FusedMultiplyAdd(d6, a, b); d7 = Vector512.FusedMultiplyAdd(d7, a, b);
            d8 = Vector512.FusedMultiplyAdd(d8, a, b); d9 = Vector512.FusedMultiplyAdd(d9, a, b);
            d10 = Vector512.FusedMultiplyAdd(d10, a, b); d11 = Vector512.FusedMultiplyAdd(d11, a, b);
        }
        var sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11 + d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7 + d8 + d9 + d10 + d11;
        return Vector512.Sum(sum);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Run256(long iterations)
    {
        var a = Vector256.Create(0.999999f);
        var b = Vector256.Create(1e-7f);
        Vector256<float> c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
        for (long i = 0; i < iterations * 2; i++)
        {
            c0 = Vector256.FusedMultiplyAdd(c0, a, b); c1 = Vector256.FusedMultiplyAdd(c1, a, b);
            c2 = Vector256.FusedMultiplyAdd(c2, a, b); c3 = Vector256.FusedMultiplyAdd(c3, a, b);
            c4 = Vector256.FusedMultiplyAdd(c4, a, b); c5 = Vector256.FusedMultiplyAdd(c5, a, b);
            c6 = Vector256.FusedMultiplyAdd(c6, a, b); c7 = Vector256.FusedMultiplyAdd(c7, a, b);
            c8 = Vector256.FusedMultiplyAdd(c8, a, b); c9 = Vector256.FusedMultiplyAdd(c9, a, b);
            c10 = Vector256.FusedMultiplyAdd(c10, a, b); c11 = Vector256.FusedMultiplyAdd(c11, a, b);
        }
        var sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
        return Vector256.Sum(sum);
    }
}
