using System.Diagnostics;
using Headwise.Kernels;

namespace Headwise.Grains.Placement;

/// <summary>
/// How fast this silo's kernel multiplies matrices, measured once at start: placement gives faster silos
/// proportionally more heads.
/// </summary>
public static class SiloSpeed
{
    /// <summary>
    /// Best GFLOP/s of 30 products 128×256·256×256 (the shape of a small head's projections): the best of many
    /// short runs is what the silo can do when it is not sharing its cores with a neighbour starting up.
    /// </summary>
    public static double MeasureGflops(IHeadKernel kernel)
    {
        const int rows = 128, inner = 256, outer = 256, repeats = 30;
        var random = new Random(1);
        var input = Enumerable.Range(0, rows * inner).Select(_ => (float)random.NextDouble()).ToArray();
        var weights = Enumerable.Range(0, inner * outer).Select(_ => (float)random.NextDouble()).ToArray();
        var output = new float[rows * outer];
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            long started = Stopwatch.GetTimestamp();
            kernel.Project(input, rows, inner, weights, outer, ReadOnlySpan<float>.Empty, output);
            best = Math.Min(best, Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
        return 2.0 * rows * inner * outer / best / 1e9;
    }
}

/// <summary>The speed this silo measured or was given at start, for the coordinator's cost model.</summary>
public sealed record SiloSpeedReading(double Gflops);
