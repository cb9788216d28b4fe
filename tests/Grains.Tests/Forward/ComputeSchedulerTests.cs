using Headwise.Grains.Forward;
using Headwise.Kernels;

namespace Headwise.Grains.Tests.Forward;

/// <summary>
/// The compute threads: pinned one to a CPU when the process may use exactly one CPU per thread (else left to the
/// operating system: under a CPU quota every process sees all the machine's CPUs), and kernels called on them stay on them.
/// </summary>
public sealed class ComputeSchedulerTests
{
    [Fact]
    public async Task Threads_keep_to_a_cpu_each_when_there_is_one_for_each()
    {
        var processCpus = OperatingSystem.IsLinux() ? CpusAllowed("/proc/self/status") : [0];
        int threads = processCpus.Length;
        using var scheduler = new ComputeScheduler(threads, pin: true);
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

    [Theory]
    [InlineData(+1)]
    [InlineData(-1)]
    public async Task Threads_are_not_pinned_unless_there_is_exactly_one_cpu_each(int more)
    {
        int cpus = OperatingSystem.IsLinux() ? CpusAllowed("/proc/self/status").Length : Environment.ProcessorCount;
        int threads = cpus + more;
        if (threads < 1) threads = cpus + 1; // a one-CPU machine has no fewer threads to try
        using var scheduler = new ComputeScheduler(threads, pin: true);
        Assert.False(scheduler.Pinned);
        if (!OperatingSystem.IsLinux()) return;
        var allowed = await scheduler.Run(() => CpusAllowed("/proc/thread-self/status"));
        Assert.Equal(CpusAllowed("/proc/self/status"), allowed);
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
