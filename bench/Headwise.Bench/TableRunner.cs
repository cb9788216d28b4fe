using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>
/// The issue-3 table from one run: per shape, Headwise's forward (ms, median), the OpenBLAS anchor (its
/// one-thread pipeline's median, halved: the perfect two-core figure), the floor (FLOPs at the measured
/// FMA peak of every core), and the ratios. With <c>--one-thread</c> both sides run on one thread (Headwise's groups
/// one after another, W_O unsplit) against the anchor unhalved: a per-core comparison that load from other
/// processes distorts less than the two-core one, which needs both cores free at once.
/// </summary>
internal static class TableRunner
{
    public static int Run(string[] args)
    {
        bool oneThread = args.Contains("--one-thread");
        var filters = args.Where(a => a != "--one-thread").ToArray();
        var shapes = LayerShape.Standard
            .Where(shape => filters.Length == 0 || filters.Any(f => shape.ToString().Contains(f, StringComparison.OrdinalIgnoreCase)))
            .ToList();
        int cores = Environment.ProcessorCount;
        Console.WriteLine($"# Headwise kernels vs OpenBLAS — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine($"cpu: {CpuName()}, {cores} cores; .NET {Environment.Version}; Vector512 {(Vector512.IsHardwareAccelerated ? "on" : "off")}, " +
            $"kernel width {(int)VectorWidths.Best} bits{(oneThread ? "; ONE thread on both sides" : "")}");
        Console.WriteLine($"load average at start: {LoadAverage()}");
        double peakOne = FmaPeak.Measure(1), peakAll = FmaPeak.Measure(cores);
        Console.WriteLine($"measured FMA peak: {peakOne:F0} GFLOP/s on 1 thread, {peakAll:F0} GFLOP/s on {cores}");
        bool blas = OpenBlas.TryLoad();
        Console.WriteLine(blas
            ? $"OpenBLAS: {OpenBlas.Config}; core {OpenBlas.CoreName} (OPENBLAS_CORETYPE {OpenBlas.CoreTypeSource}), 1 thread"
            : $"OpenBLAS: not loaded ({OpenBlas.LoadError}); anchor columns empty");
        Console.WriteLine();
        Console.WriteLine("Times are median / best of the runs; on a machine shared with other builds the best is the figure least");
        Console.WriteLine("disturbed by them. Ratios and the FLOP rate are given for both.");
        Console.WriteLine();
        int threads = oneThread ? 1 : 2; // the anchor's perfect two-core figure, as issue 3 defines it
        double peak = oneThread ? peakOne : peakAll;
        Console.WriteLine($"| shape | GFLOP | runs | Headwise ms{(oneThread ? " (1 thread)" : "")} | OpenBLAS ms (1 thread{(oneThread ? "" : " ÷ 2")}) | floor ms | Headwise ÷ OpenBLAS | % of FMA peak | max abs diff |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");

        var kernel = new SimdKernel();
        var results = new Dictionary<LayerShape, (double Median, double Best)>();
        foreach (var shape in shapes)
        {
            var fixture = new LayerFixture(shape);
            fixture.Prepare(kernel);
            fixture.Headwise(kernel);
            var headwiseOutput = (float[])fixture.Output.Clone();
            // Headwise and the anchor alternate, so background load (this is a shared machine) hits both alike.
            double seconds = shape.Tokens >= 1024 ? 4.0 : 2.0;
            Action headwiseForward = oneThread ? () => fixture.HeadwiseOneThread(kernel) : () => fixture.Headwise(kernel);
            var (headwise, single) = Timing.MeasurePair(headwiseForward, blas ? fixture.OpenBlasPipeline : null, minSeconds: seconds);
            results[shape] = (headwise.MedianMs, headwise.MinMs);
            string anchor = "", ratio = "", difference = "";
            if (single is { } one)
            {
                anchor = $"{one.MedianMs / threads:F3} / {one.MinMs / threads:F3}";
                ratio = $"{headwise.MedianMs / (one.MedianMs / threads):F2}× / {headwise.MinMs / (one.MinMs / threads):F2}×";
                difference = $"{MaxAbsDifference(headwiseOutput, fixture.Output):E1}";
            }
            double gflop = shape.Flops / 1e9;
            double floorMs = gflop / peak * 1e3;
            Console.WriteLine($"| {shape} | {gflop:F3} | {headwise.Runs} | {headwise.MedianMs:F3} / {headwise.MinMs:F3} | {anchor} | {floorMs:F3} | {ratio} | " +
                $"{100 * floorMs / headwise.MedianMs:F0}% / {100 * floorMs / headwise.MinMs:F0}% | {difference} |");
        }

        Console.WriteLine();
        foreach (var pair in results.Where(p => p.Key.Causal && p.Key.Tokens > 1))
        {
            var open = results.FirstOrDefault(q => !q.Key.Causal && q.Key with { Causal = true } == pair.Key);
            if (open.Key is not null)
                Console.WriteLine($"causal ÷ not causal, {open.Key.Model} T={open.Key.Tokens}: {pair.Value.Median / open.Value.Median:F2} (median), " +
                    $"{pair.Value.Best / open.Value.Best:F2} (best)");
        }
        Console.WriteLine($"load average at end: {LoadAverage()}");
        return 0;
    }

    private static double MaxAbsDifference(float[] left, float[] right)
    {
        double max = 0;
        for (int i = 0; i < left.Length; i++) max = Math.Max(max, Math.Abs((double)left[i] - right[i]));
        return max;
    }

    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private static string CpuName()
    {
        if (!File.Exists("/proc/cpuinfo")) return RuntimeInformation.ProcessArchitecture.ToString();
        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? RuntimeInformation.ProcessArchitecture.ToString() : line[(line.IndexOf(':') + 1)..].Trim();
    }
}
