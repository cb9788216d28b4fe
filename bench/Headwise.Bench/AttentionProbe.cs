using System.Runtime.Intrinsics;
using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>
/// One head's fused attention taken apart: the whole, the score GEMMs alone, the weights·V GEMMs alone, the softmax
/// alone; at the width the kernel runs here (so <c>--avx2</c> times the Vector256 path, not emulated Vector512).
/// </summary>
internal static unsafe class AttentionProbe
{
    public static int Run(string[] args) => VectorWidths.Best switch
    {
        VectorWidth.Bits512 => Run<Vector512Ops, Vector512<float>>(args),
        VectorWidth.Bits256 => Run<Vector256Ops, Vector256<float>>(args),
        VectorWidth.Bits128 => Run<Vector128Ops, Vector128<float>>(args),
        _ => Run<ScalarOps, float>(args),
    };

    private static int Run<TOps, TVector>(string[] args)
        where TOps : struct, IFloatVectorOps<TVector>
        where TVector : struct
    {
        int tokens = args.Length > 0 ? int.Parse(args[0]) : 1024;
        int headDim = args.Length > 1 ? int.Parse(args[1]) : 64;
        bool causal = args.Length > 2 && bool.Parse(args[2]);
        bool wholeOnly = args.Length > 3 && args[3] == "whole"; // for a profiler: the fused head alone, longer
        int P = 2 * TOps.Count, rows = AttentionTiles.QueryRows<TOps, TVector>();
        int chunk = AttentionTiles.KeyChunk;
        var random = new Random(3);
        // The last query block reads rows up to a whole block past the sequence: zero rows, as the kernel pads them.
        int paddedRows = (tokens + rows - 1) / rows * rows;
        var q = new PinnedFloats(paddedRows * headDim);
        var k = new PinnedFloats(tokens * headDim);
        var v = new PinnedFloats(tokens * headDim);
        foreach (var buffer in new[] { q, k, v })
            for (int i = 0; i < tokens * headDim; i++) buffer.Span[i] = (float)(random.NextDouble() - 0.5);
        var scores = new PinnedFloats(rows * Math.Max(chunk, tokens));
        var accumulator = new PinnedFloats(rows * headDim);
        var z = new PinnedFloats(tokens * headDim);
        var options = new AttentionOptions(0.125f, causal, 0);
        double flops = 4.0 * headDim * (causal ? tokens * (tokens + 1.0) / 2 : (double)tokens * tokens);
        // The parts below run whole query blocks only: their rates count the rows they cover.
        double covered = (double)(tokens / rows * rows) / tokens;
        double peak = wholeOnly ? 1 : FmaPeak.Measure(1);
        Console.WriteLine($"T={tokens} dh={headDim} causal={causal} chunk={chunk} width {VectorWidths.Best} query rows {rows}; peak {peak:F0}; load {TableRunner.LoadAverage()}");
        void Report(string name, double work, Action action)
        {
            var r = Timing.Measure(action, minSeconds: 1.0);
            Console.WriteLine($"{name,-26} min {r.MinMs:F3} ms  median {r.MedianMs:F3} ms  {work / r.MinMs / 1e6:F0} GFLOP/s ({100 * work / r.MinMs / 1e6 / peak:F0}%)");
        }
        if (wholeOnly)
        {
            for (int i = 0; i < 3000; i++)
                AttentionTiles.Head<TOps, TVector>(q.Pointer, headDim, k.Pointer, v.Pointer, tokens * P,
                    tokens, headDim, tokens, options, scores.Pointer, chunk, accumulator.Pointer, z.Pointer, headDim, null);
            return 0;
        }
        Report("whole head", flops, () => AttentionTiles.Head<TOps, TVector>(q.Pointer, headDim, k.Pointer, v.Pointer, tokens * P,
            tokens, headDim, tokens, options, scores.Pointer, chunk, accumulator.Pointer, z.Pointer, headDim, null));
        Report("scores GEMM only", flops / 2 * covered, () =>
        {
            for (int first = 0; first + rows <= tokens; first += rows)
                for (int start = 0; start < tokens; start += chunk)
                    for (int p = 0; p < chunk / P; p++)
                        Gemm.Tile<TOps, TVector>(rows, q.Pointer + first * headDim, headDim, k.Pointer + (start / P + p) * headDim * P, P, headDim, scores.Pointer + p * P, chunk, false);
        });
        Report("weights·V GEMM only", flops / 2 * covered, () =>
        {
            for (int first = 0; first + rows <= tokens; first += rows)
                for (int start = 0; start < tokens; start += chunk)
                    for (int p = 0; p < headDim / P; p++)
                        Gemm.Tile<TOps, TVector>(rows, scores.Pointer, chunk, v.Pointer + p * tokens * P + start * P, P, chunk, accumulator.Pointer + p * P, headDim, true);
        });
        float m = 0;
        var sums = new PinnedFloats(16);
        Report("softmax rows only", flops * covered, () =>
        {
            for (int first = 0; first + rows <= tokens; first += rows)
                for (int start = 0; start < tokens; start += chunk)
                    for (int i = 0; i < rows; i++)
                    {
                        m = float.NegativeInfinity;
                        AttentionTiles.OnlineSoftmaxRow<TOps, TVector>(scores.Pointer + i * chunk, 0, chunk, chunk, ref m, sums.Pointer);
                    }
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v); GC.KeepAlive(scores); GC.KeepAlive(accumulator); GC.KeepAlive(z);
        return 0;
    }
}
