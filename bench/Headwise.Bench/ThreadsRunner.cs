using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>
/// The threading choice measured: a layer's head groups on one thread, on as many threads as cores (what a silo
/// does: one grain per group on the thread pool, each Attend single-threaded), and on twice as many threads as
/// cores (oversubscribed); W_O inline against split over the cores.
/// </summary>
internal static class ThreadsRunner
{
    public static int Run(string[] args)
    {
        int tokens = args.Length > 0 ? int.Parse(args[0]) : 1024;
        int cores = Environment.ProcessorCount;
        var shape = new LayerShape("gpt2-small", 768, 12, 12, 64, tokens, false);
        var fixture = new LayerFixture(shape);
        var kernel = new SimdKernel();
        fixture.Prepare(kernel);
        Console.WriteLine($"{shape}, {cores} cores; load {TableRunner.LoadAverage()}");
        void Report(string name, Action action)
        {
            var result = Timing.Measure(action, minSeconds: 2.0);
            Console.WriteLine($"| {name} | {result.MedianMs:F2} | {result.MinMs:F2} |");
        }
        Console.WriteLine("| forward | median ms | min ms |");
        Console.WriteLine("| --- | ---: | ---: |");
        Report("groups on 1 thread, then W_O", () => fixture.HeadwiseOneThread(kernel));
        Report($"groups on {cores} threads (thread pool), then W_O", () => fixture.Headwise(kernel));
        Report($"groups on {2 * cores} threads (oversubscribed), then W_O", () => fixture.HeadwiseOnThreads(kernel, 2 * cores));
        Report($"groups on {cores} dedicated threads, then W_O", () => fixture.HeadwiseOnThreads(kernel, cores));
        Report("W_O alone, split over the cores", () => fixture.ProjectOutput(kernel));
        Report($"groups alone on {cores} threads (thread pool)", () => fixture.AttendAll(kernel));
        Report("gather alone", fixture.GatherOnly);
        PerThreadBusy(fixture, kernel, cores);
        Report("one group's Attend, alone", () => fixture.AttendOne(kernel, 0));
        // Every core runs its own group's Attend over and over at the same time: what one call costs when the
        // cores are all busy, against the row above.
        using (var stop = new CancellationTokenSource())
        {
            var others = Enumerable.Range(1, cores - 1).Select(core => Task.Factory.StartNew(() =>
            {
                while (!stop.IsCancellationRequested) fixture.AttendOne(kernel, core);
            }, TaskCreationOptions.LongRunning)).ToArray();
            Report($"one group's Attend, {cores - 1} other core(s) busy with theirs", () => fixture.AttendOne(kernel, 0));
            stop.Cancel();
            Task.WaitAll(others);
        }
        return 0;
    }

    /// <summary>
    /// The groups on one thread per core, each thread taking the next group when it is done: prints, for the fastest
    /// of 40 passes, each thread's busy time and group count. Unequal counts at equal busy times mean the cores ran at
    /// different speeds (on a shared VM, another guest on a core's sibling), which no schedule of equal groups hides.
    /// </summary>
    private static void PerThreadBusy(LayerFixture fixture, IHeadKernel kernel, int cores)
    {
        int groups = fixture.Shape.KvHeadCount;
        double best = double.MaxValue;
        string split = "";
        for (int pass = 0; pass < 40; pass++)
        {
            var busy = new double[cores];
            var taken = new int[cores];
            int next = -1;
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            var threads = Enumerable.Range(0, cores).Select(core => new Thread(() =>
            {
                int group;
                while ((group = Interlocked.Increment(ref next)) < groups)
                {
                    long begun = System.Diagnostics.Stopwatch.GetTimestamp();
                    fixture.AttendOne(kernel, group);
                    busy[core] += System.Diagnostics.Stopwatch.GetElapsedTime(begun).TotalMilliseconds;
                    taken[core]++;
                }
            })).ToArray();
            foreach (var thread in threads) thread.Start();
            foreach (var thread in threads) thread.Join();
            double ms = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            if (ms >= best) continue;
            best = ms;
            split = string.Join("; ", busy.Select((b, i) => $"{taken[i]} groups in {b:F2} ms"));
        }
        Console.WriteLine($"| groups on {cores} threads taking the next group (fastest of 40: {split}) | | {best:F2} |");
    }
}
