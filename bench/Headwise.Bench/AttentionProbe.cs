using System.Runtime.Intrinsics;
using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>One head's fused attention taken apart: the whole, the score GEMMs alone, the weights·V GEMMs alone, the softmax alone.</summary>
internal static unsafe class AttentionProbe
{
    public static int Run(string[] args)
    {
        int tokens = args.Length > 0 ? int.Parse(args[0]) : 1024;
        int headDim = args.Length > 1 ? int.Parse(args[1]) : 64;
        bool causal = args.Length > 2 && bool.Parse(args[2]);
        bool wholeOnly = args.Length > 3 && args[3] == "whole"; // for a profiler: the fused head alone, longer
        const int P = 32;
        int chunk = AttentionTiles.KeyChunk;
        var random = new Random(3);
        var q = new PinnedFloats(tokens * headDim);
        var k = new PinnedFloats(tokens * headDim);
        var v = new PinnedFloats(tokens * headDim);
        foreach (var buffer in new[] { q, k, v })
            for (int i = 0; i < buffer.Length; i++) buffer.Span[i] = (float)(random.NextDouble() - 0.5);
        var scores = new PinnedFloats(8 * Math.Max(chunk, tokens));
        var accumulator = new PinnedFloats(8 * headDim);
        var z = new PinnedFloats(tokens * headDim);
        var options = new AttentionOptions(0.125f, causal, 0);
        double flops = 4.0 * headDim * (causal ? tokens * (tokens + 1.0) / 2 : (double)tokens * tokens);
        double peak = wholeOnly ? 1 : FmaPeak.Measure(1);
        Console.WriteLine($"T={tokens} dh={headDim} causal={causal} chunk={chunk}; peak {peak:F0}; load {TableRunner.LoadAverage()}");
        void Report(string name, double work, Action action)
        {
            var r = Timing.Measure(action, minSeconds: 1.0);
            Console.WriteLine($"{name,-26} min {r.MinMs:F3} ms  median {r.MedianMs:F3} ms  {work / r.MinMs / 1e6:F0} GFLOP/s ({100 * work / r.MinMs / 1e6 / peak:F0}%)");
        }
        if (wholeOnly)
        {
            for (int i = 0; i < 3000; i++)
                AttentionTiles.Head<Vector512Ops, Vector512<float>>(q.Pointer, headDim, k.Pointer, v.Pointer, tokens * P,
                    tokens, headDim, tokens, options, scores.Pointer, chunk, accumulator.Pointer, z.Pointer, headDim, null);
            return 0;
        }
        Report("whole head", flops, () => AttentionTiles.Head<Vector512Ops, Vector512<float>>(q.Pointer, headDim, k.Pointer, v.Pointer, tokens * P,
            tokens, headDim, tokens, options, scores.Pointer, chunk, accumulator.Pointer, z.Pointer, headDim, null));
        Report("scores GEMM only", flops / 2, () =>
        {
            for (int first = 0; first < tokens; first += 8)
                for (int start = 0; start < tokens; start += chunk)
                    for (int p = 0; p < chunk / P; p++)
                        Gemm.Tile<Vector512Ops, Vector512<float>>(8, q.Pointer + first * headDim, headDim, k.Pointer + (start / P + p) * headDim * P, P, headDim, scores.Pointer + p * P, chunk, false);
        });
        Report("weights·V GEMM only", flops / 2, () =>
        {
            for (int first = 0; first < tokens; first += 8)
                for (int start = 0; start < tokens; start += chunk)
                    for (int p = 0; p < headDim / P; p++)
                        Gemm.Tile<Vector512Ops, Vector512<float>>(8, scores.Pointer, chunk, v.Pointer + p * tokens * P + start * P, P, chunk, accumulator.Pointer + p * P, headDim, true);
        });
        float m = 0;
        var sums = new PinnedFloats(16);
        Report("softmax rows only", flops, () =>
        {
            for (int first = 0; first < tokens; first += 8)
                for (int start = 0; start < tokens; start += chunk)
                    for (int i = 0; i < 8; i++)
                    {
                        m = float.NegativeInfinity;
                        AttentionTiles.OnlineSoftmaxRow<Vector512Ops, Vector512<float>>(scores.Pointer + i * chunk, 0, chunk, chunk, ref m, sums.Pointer);
                    }
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v); GC.KeepAlive(scores); GC.KeepAlive(accumulator); GC.KeepAlive(z);
        return 0;
    }
}
