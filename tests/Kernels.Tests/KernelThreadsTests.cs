using Headwise.Kernels;

namespace Headwise.Kernels.Tests;

/// <summary>
/// <see cref="KernelThreads.For"/>: every item once, on the caller and the helpers; nested calls and calls under
/// <see cref="KernelThreads.OwnThreadOnly"/> stay on their thread; a failing item surfaces.
/// </summary>
public sealed class KernelThreadsTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(100)]
    public void Every_item_runs_once(int count)
    {
        var calls = new int[count];
        KernelThreads.For(count, i => Interlocked.Increment(ref calls[i]));
        Assert.All(calls, c => Assert.Equal(1, c));
    }

    [Fact]
    public void A_nested_call_runs_on_its_callers_thread()
    {
        var outer = new int[8];
        var nestedOnCaller = new bool[8];
        KernelThreads.For(8, i =>
        {
            int thread = Environment.CurrentManagedThreadId;
            bool allHere = true;
            KernelThreads.For(16, _ => { if (Environment.CurrentManagedThreadId != thread) allHere = false; });
            nestedOnCaller[i] = allHere;
            Interlocked.Increment(ref outer[i]);
        });
        Assert.All(outer, c => Assert.Equal(1, c));
        Assert.All(nestedOnCaller, Assert.True);
    }

    [Fact]
    public async Task Under_OwnThreadOnly_every_item_runs_on_the_caller()
    {
        var threads = await Task.Run(() =>
        {
            KernelThreads.OwnThreadOnly = true;
            try
            {
                var seen = new System.Collections.Concurrent.ConcurrentBag<int>();
                KernelThreads.For(64, _ => { seen.Add(Environment.CurrentManagedThreadId); Thread.SpinWait(1000); });
                return (Caller: Environment.CurrentManagedThreadId, Seen: seen.Distinct().ToArray());
            }
            finally
            {
                KernelThreads.OwnThreadOnly = false;
            }
        });
        Assert.Equal([threads.Caller], threads.Seen);
    }

    [Fact]
    public void A_failing_item_surfaces_and_the_others_still_run()
    {
        var calls = new int[10];
        var error = Assert.Throws<AggregateException>(() => KernelThreads.For(10, i =>
        {
            Interlocked.Increment(ref calls[i]);
            if (i == 3) throw new InvalidOperationException("item 3");
        }));
        Assert.Equal("item 3", Assert.IsType<InvalidOperationException>(error.InnerException).Message);
        Assert.All(calls, c => Assert.Equal(1, c));
    }

    // The inline path (taken whenever another call holds the helpers, as in a test run with other classes in parallel)
    // must fail the same way: a CI run once saw the bare exception and item 4..9 never called.
    [Fact]
    public async Task A_failing_item_on_the_inline_path_surfaces_wrapped_and_the_others_still_run()
    {
        var calls = new int[10];
        var error = await Task.Run(() =>
        {
            KernelThreads.OwnThreadOnly = true;
            try
            {
                return Assert.Throws<AggregateException>(() => KernelThreads.For(10, i =>
                {
                    Interlocked.Increment(ref calls[i]);
                    if (i == 3) throw new InvalidOperationException("item 3");
                }));
            }
            finally
            {
                KernelThreads.OwnThreadOnly = false;
            }
        });
        Assert.Equal("item 3", Assert.IsType<InvalidOperationException>(error.InnerException).Message);
        Assert.All(calls, c => Assert.Equal(1, c));
    }
}
