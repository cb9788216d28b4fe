using Headwise.Kernels;
namespace Headwise.Bench;
internal static class AllocProbe
{
    public static int Run()
    {
        const int rows = 64, inner = 128, outer = 160;
        var x = new float[rows * inner]; var w = new float[inner * outer]; var b = new float[outer]; var y = new float[rows * outer];
        var kernel = new SimdKernel();
        for (int i = 0; i < 5; i++) kernel.Project(x, rows, inner, w, outer, b, y);
        for (int r = 0; r < 5; r++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            kernel.Project(x, rows, inner, w, outer, b, y);
            long mid = GC.GetAllocatedBytesForCurrentThread();
            KernelParallelismProbe();
            long after = GC.GetAllocatedBytesForCurrentThread();
            Console.WriteLine($"project {mid - before} B, probe {after - mid} B");
        }
        return 0;
    }
    static void KernelParallelismProbe()
    {
        KernelParallelism.ForRowRanges(100, 1 << 20, 0, static (s, a, b) => { });
    }
}
