using Headwise.Kernels;
namespace Headwise.Bench;
internal static unsafe class DecodeProbe
{
    public static int Run()
    {
        int d = 768;
        var x = new float[d]; var w = new float[d * d]; var b = new float[d]; var y = new float[d];
        var r = new Random(1); for (int i = 0; i < w.Length; i++) w[i] = (float)r.NextDouble();
        var kernel = new SimdKernel();
        void Report(string name, Action a) { var t = Timing.Measure(a, 0.5); Console.WriteLine($"{name,-30} min {t.MinMs * 1000:F1} µs median {t.MedianMs * 1000:F1} µs"); }
        Report("Project 1 row, bias", () => kernel.Project(x, 1, d, w, d, b, y));
        Report("Project 1 row, no bias", () => kernel.Project(x, 1, d, w, d, [], y));
        int P = Gemm.PanelWidth(VectorWidths.Best);
        Report("Gemm 1 row inline", () => { fixed (float* px = x, pw = w, py = y) Gemm.Multiply(VectorWidths.Best, px, d, 1, d, Panels.InPlace(pw, d, d, d, P, null), py, d, false); });
        Report("Gemm 1 row, half columns", () => { fixed (float* px = x, pw = w, py = y) Gemm.Multiply(VectorWidths.Best, px, d, 1, d, Panels.InPlace(pw, d, d, d / 2, P, null), py, d, false); });
        return 0;
    }
}
