using System.Runtime.Intrinsics;
using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>
/// Where the time of one layer goes, one thread at a time: the QKV GEMM of one group, the fused attention of
/// one head, Attend as a whole, and W_O on one thread and on all — each with its GFLOP/s against the one-thread peak.
/// </summary>
internal static unsafe class PartsRunner
{
    public static int Run(string[] args)
    {
        int tokens = args.Length > 0 ? int.Parse(args[0]) : 1024;
        int modelDim = args.Length > 1 ? int.Parse(args[1]) : 768;
        int headDim = args.Length > 2 ? int.Parse(args[2]) : 64;
        bool causal = args.Length > 3 && bool.Parse(args[3]);
        int heads = modelDim / headDim;
        double peak = FmaPeak.Measure(1);
        Console.WriteLine($"T={tokens} D={modelDim} dh={headDim} causal={causal}; 1-thread FMA peak {peak:F0} GFLOP/s; load {TableRunner.LoadAverage()}");
        var shape = new LayerShape("parts", modelDim, heads, heads, headDim, tokens, causal);
        var fixture = new LayerFixture(shape);
        var kernel = new SimdKernel();
        fixture.Prepare(kernel);
        fixture.Headwise(kernel);

        void Report(string name, double flops, Action action)
        {
            var result = Timing.Measure(action, minSeconds: 1.0);
            double rate = flops / (result.MedianMs / 1e3) / 1e9;
            Console.WriteLine($"{name,-34} {result.MedianMs,9:F3} ms (min {result.MinMs,9:F3})  {rate,6:F0} GFLOP/s  {100 * rate / peak,4:F0}% of 1 core");
        }

        // The QKV GEMM alone: x [T, D] · packed [D, 3dh].
        var group = PackedHeadGroup.Create(new HeadGroupWeights(new HeadGroupShape(modelDim, headDim, 1),
            new float[modelDim * headDim], new float[modelDim * headDim], new float[modelDim * headDim]), VectorWidths.Best);
        var x = new float[tokens * modelDim];
        new Random(1).NextBytes(new byte[4]);
        for (int i = 0; i < x.Length; i++) x[i] = (i % 13) * 0.01f;
        var qkv = new float[tokens * 3 * headDim];
        Report("QKV GEMM (1 group)", 2.0 * tokens * modelDim * 3 * headDim, () =>
        {
            fixed (float* a = x, c = qkv)
                Gemm.Multiply(VectorWidths.Best, a, modelDim, tokens, modelDim, group.Panels, c, 3 * headDim, accumulate: false);
        });
        double visible = causal ? tokens * (tokens + 1.0) / 2 : (double)tokens * tokens;
        Report("Attend (1 group: QKV + attention)", 2.0 * tokens * modelDim * 3 * headDim + 4 * visible * headDim, () => fixture.AttendOne(kernel));
        var rope = new Rotary(10000f, headDim);
        Report("Attend with RoPE (fused)", 2.0 * tokens * modelDim * 3 * headDim + 4 * visible * headDim, () => fixture.AttendOne(kernel, rope: rope));
        if (tokens <= 1024)
            Report("RoPE: projections + incremental path", 2.0 * tokens * modelDim * 3 * headDim + 4 * visible * headDim,
                () => fixture.AttendOneIncremental(kernel, rope));
        Report("W_O Project (all cores)", 2.0 * tokens * modelDim * modelDim, () => fixture.ProjectOutput(kernel));
        var single = new float[tokens * modelDim];
        var w = new float[modelDim * modelDim];
        var y = new float[tokens * modelDim];
        int panelWidth = Gemm.PanelWidth(VectorWidths.Best);
        Report("W_O GEMM (1 thread, B in place)", 2.0 * tokens * modelDim * modelDim, () =>
        {
            fixed (float* a = single, b = w, c = y)
                Gemm.Multiply(VectorWidths.Best, a, modelDim, tokens, modelDim, Panels.InPlace(b, modelDim, modelDim, modelDim, panelWidth, null), c, modelDim, accumulate: false);
        });
        var packedW = new PinnedFloats(modelDim * modelDim);
        fixed (float* b = w) Gemm.Pack(b, modelDim, modelDim, modelDim, panelWidth, packedW.Pointer);
        Report("W_O GEMM (1 thread, B packed)", 2.0 * tokens * modelDim * modelDim, () =>
        {
            fixed (float* a = single, c = y)
                Gemm.Multiply(VectorWidths.Best, a, modelDim, tokens, modelDim, Panels.Packed(packedW.Pointer, modelDim, modelDim, panelWidth), c, modelDim, accumulate: false);
        });
        if (tokens <= 256)
        {
            // Version 1, the float64 oracle, on the same group: the ratio the kernel's header quotes.
            var reference = new ReferenceKernel();
            var one = Timing.Measure(() => fixture.AttendOne(reference), minSeconds: 1.0, minRuns: 3, warmups: 1);
            var fast = Timing.Measure(() => fixture.AttendOne(kernel), minSeconds: 1.0);
            Console.WriteLine($"Attend (1 group), reference kernel  {one.MedianMs,9:F3} ms: simd is {one.MedianMs / fast.MedianMs:F0}× faster");
        }
        Report("Forward, 1 thread", shape.Flops, () => fixture.HeadwiseOneThread(kernel));
        Report("Forward, all cores", shape.Flops, () => fixture.Headwise(kernel));
        GC.KeepAlive(group);
        GC.KeepAlive(packedW);
        return 0;
    }
}
