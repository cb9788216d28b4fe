using System.Numerics.Tensors;

namespace Headwise.Bench;

/// <summary>
/// Read bandwidth: TensorPrimitives.Sum over buffers from L2-sized to far past L3-per-core, on one thread and on
/// every core at once (each its own buffer). A decode step streams its weights and K/V caches once, so these
/// rates bound how fast a step can be (docs/performance.md, "Decode").
/// </summary>
internal static class MemoryRunner
{
    public static int Run(string[] args)
    {
        int cores = Environment.ProcessorCount;
        Console.WriteLine($"read bandwidth, {cores} cores; load {TableRunner.LoadAverage()}");
        Console.WriteLine("| buffer MB | 1 thread GB/s | all cores GB/s |");
        Console.WriteLine("| ---: | ---: | ---: |");
        foreach (int megabytes in new[] { 1, 2, 8, 16, 64, 256 })
        {
            int count = megabytes << 18;
            var buffers = Enumerable.Range(0, cores).Select(_ => Filled(count)).ToArray();
            double one = Rate(megabytes, Timing.Measure(() => TensorPrimitives.Sum(buffers[0]), minSeconds: 0.5).MinMs);
            double all = Rate(megabytes * cores, Timing.Measure(() =>
                Parallel.For(0, cores, new ParallelOptions { MaxDegreeOfParallelism = cores }, i => TensorPrimitives.Sum(buffers[i])), minSeconds: 0.5).MinMs);
            Console.WriteLine($"| {megabytes} | {one:F1} | {all:F1} |");
        }
        return 0;
    }

    private static float[] Filled(int count)
    {
        var values = new float[count];
        values.AsSpan().Fill(1f);
        return values;
    }

    private static double Rate(int megabytes, double ms) => megabytes / 1024.0 / (ms / 1000);
}
