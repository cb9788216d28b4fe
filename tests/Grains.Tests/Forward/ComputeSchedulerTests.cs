using Headwise.Grains.Forward;
using Headwise.Kernels;

namespace Headwise.Grains.Tests.Forward;

/// <summary>
/// The compute threads: pinned one to a CPU when the process has a CPU for each (else left to the operating system), and
/// kernels called on them stay on them.
/// </summary>
public sealed class ComputeSchedulerTests
{
    [Fact]
    public async Task Threads_keep_to_a_cpu_each_when_there_is_one_for_each()
    {
        int threads = Math.Min(2, Environment.ProcessorCount);
        using var scheduler = new ComputeScheduler(threads, pin: true);
        var processCpus = CpusAllowed("/proc/self/status");
        // Each thread reports its own allowed CPUs, both at once (the barrier keeps one thread from taking both items).
        using var barrier = new Barrier(threads);
        var seen = await Task.WhenAll(Enumerable.Range(0, threads).Select(_ => scheduler.Run(() =>
        {
            barrier.SignalAndWait(TimeSpan.FromSeconds(10));
            return (Cpus: CpusAllowed("/proc/thread-self/status"), OwnThread: KernelThreads.OwnThreadOnly);
        })));

        Assert.All(seen, s => Assert.True(s.OwnThread));
        if (!OperatingSystem.IsLinux()) return;
        Assert.True(scheduler.Pinned);
        Assert.All(seen, s => Assert.Single(s.Cpus));
        Assert.Equal(threads, seen.Select(s => s.Cpus[0]).Distinct().Count());
        Assert.All(seen, s => Assert.Contains(s.Cpus[0], processCpus));
    }

    [Fact]
    public async Task More_threads_than_cpus_are_not_pinned()
    {
        using var scheduler = new ComputeScheduler(Environment.ProcessorCount + 1, pin: true);
        Assert.False(scheduler.Pinned);
        if (!OperatingSystem.IsLinux()) return;
        var cpus = await scheduler.Run(() => CpusAllowed("/proc/thread-self/status"));
        Assert.Equal(CpusAllowed("/proc/self/status"), cpus);
    }

    [Fact]
    public void Kernels_elsewhere_may_split()
    {
        Assert.False(KernelThreads.OwnThreadOnly);
    }

    // "Cpus_allowed_list:	0-1,4" → [0, 1, 4]
    private static int[] CpusAllowed(string status)
    {
        string list = File.ReadLines(status).Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal)).Split(':')[1].Trim();
        return list.Split(',').SelectMany(part =>
        {
            var ends = part.Split('-').Select(int.Parse).ToArray();
            return Enumerable.Range(ends[0], ends[^1] - ends[0] + 1);
        }).ToArray();
    }
}
