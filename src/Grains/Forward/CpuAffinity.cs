using System.Runtime.InteropServices;

namespace Headwise.Grains.Forward;

/// <summary>
/// The CPUs this process may run on, and pinning the calling thread to one of them (Linux only; elsewhere a no-op).
/// </summary>
internal static class CpuAffinity
{
    private const int MaskWords = 16; // 1024 CPUs

    /// <summary>The CPUs the calling thread may run on now (on a fresh thread: the process's set), or empty if unknown.</summary>
    public static int[] Allowed()
    {
        if (!OperatingSystem.IsLinux()) return [];
        var mask = new ulong[MaskWords];
        if (sched_getaffinity(0, MaskWords * sizeof(ulong), mask) != 0) return [];
        var cpus = new List<int>();
        for (int word = 0; word < MaskWords; word++)
            for (int bit = 0; bit < 64; bit++)
                if ((mask[word] & (1UL << bit)) != 0) cpus.Add(word * 64 + bit);
        return cpus.ToArray();
    }

    /// <summary>Keeps the calling thread on <paramref name="cpu"/>; false if the system refused.</summary>
    public static bool PinCurrentThread(int cpu)
    {
        if (!OperatingSystem.IsLinux() || cpu < 0 || cpu >= MaskWords * 64) return false;
        var mask = new ulong[MaskWords];
        mask[cpu / 64] = 1UL << (cpu % 64);
        return sched_setaffinity(0, MaskWords * sizeof(ulong), mask) == 0;
    }

    // DllImport rather than LibraryImport: a mask array marshals without unsafe code in this assembly.
    [DllImport("libc", SetLastError = true)]
    private static extern int sched_getaffinity(int pid, nint size, [Out] ulong[] mask);

    [DllImport("libc", SetLastError = true)]
    private static extern int sched_setaffinity(int pid, nint size, ulong[] mask);
}
