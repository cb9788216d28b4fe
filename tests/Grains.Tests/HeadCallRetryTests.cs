using Headwise.Contracts;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Microsoft.Extensions.Time.Testing;

namespace Headwise.Grains.Tests;

/// <summary>The coordinator's retry of a scatter whose silo died: bounded by a budget and the caller's deadline, with backoff, and only for silo failures.</summary>
public sealed class HeadCallRetryTests
{
    [Fact]
    public async Task A_silo_failure_is_retried_after_forgetting_the_locations_until_an_attempt_answers()
    {
        int attempts = 0, forgotten = 0;
        int result = await HeadCallRetry.RunAsync(() =>
        {
            attempts++;
            return attempts < 3 ? Task.FromException<int>(new SiloUnavailableException("gone")) : Task.FromResult(42);
        }, () => forgotten++);
        Assert.Equal(42, result);
        Assert.Equal(3, attempts);
        Assert.Equal(2, forgotten);
    }

    // The retry runs on the thread pool against a fake clock the test moves; each wait is for what the moved clock lets
    // happen next (a backoff's timer is made before the clock is moved past it), so a slow machine changes nothing but
    // the test's own duration.
    private static async Task WaitFor(Func<bool> condition, Task run)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!condition() && !run.IsCompleted)
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(10), "the retry did not move on");
            await Task.Delay(1);
        }
    }

    /// <summary>A fake clock that counts the timers made on it (one per backoff).</summary>
    private sealed class CountingClock : FakeTimeProvider
    {
        private int _timers;
        public int Timers => Volatile.Read(ref _timers);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _timers);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }

    [Fact]
    public async Task Retries_go_on_for_the_budget_spaced_by_backoff_then_the_failure_surfaces()
    {
        var time = new CountingClock();
        long start = time.GetTimestamp();
        var attemptedAt = new System.Collections.Concurrent.ConcurrentQueue<double>();
        var run = Task.Run(() => HeadCallRetry.RunAsync<int>(() =>
        {
            attemptedAt.Enqueue(time.GetElapsedTime(start).TotalMilliseconds);
            throw new HeadwiseException(ErrorCode.Unavailable, "relay: silo gone");
        }, () => { }, budget: TimeSpan.FromSeconds(1.5), time: time));
        // Backoff 50 ms doubling to 500: 50 + 100 + 200 + 400 + 500 ms fit in 1.5 s, a sixth wait of 500 would not.
        int[] backoffs = [50, 100, 200, 400, 500];
        for (int i = 0; i < backoffs.Length; i++)
        {
            await WaitFor(() => time.Timers == i + 1, run);
            Assert.False(run.IsCompleted, $"the retries ended after {attemptedAt.Count} attempts");
            time.Advance(TimeSpan.FromMilliseconds(backoffs[i]));
        }
        await Assert.ThrowsAsync<HeadwiseException>(() => run.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal([0.0, 50, 150, 350, 750, 1250], attemptedAt.ToArray());
    }

    [Fact]
    public async Task The_callers_deadline_ends_the_retries()
    {
        var time = new CountingClock();
        using var deadline = new CancellationTokenSource();
        int attempts = 0, forgotten = 0;
        var run = Task.Run(() => HeadCallRetry.RunAsync<int>(() =>
        {
            Interlocked.Increment(ref attempts);
            throw new SiloUnavailableException("gone");
        }, () => Interlocked.Increment(ref forgotten), deadline.Token, time: time));
        await WaitFor(() => time.Timers == 1, run);
        time.Advance(TimeSpan.FromMilliseconds(50));
        await WaitFor(() => time.Timers == 2, run);
        // The deadline passes during the second backoff, which the fake clock never ends: only the deadline can end the
        // wait (a wait that ignored it would hang until WaitAsync gives up, and fail the test).
        deadline.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(2, attempts);
        Assert.Equal(1, forgotten);
    }

    [Fact]
    public async Task Other_failures_are_not_retried()
    {
        int attempts = 0;
        await Assert.ThrowsAsync<HeadwiseException>(() => HeadCallRetry.RunAsync<int>(() =>
        {
            attempts++;
            throw new HeadwiseException(ErrorCode.InvalidArgument, "input.shape");
        }, () => { }));
        Assert.Equal(1, attempts);
    }

    [Fact]
    public async Task Cancellation_stops_the_retries()
    {
        using var cancellation = new CancellationTokenSource();
        int attempts = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => HeadCallRetry.RunAsync<int>(() =>
        {
            attempts++;
            cancellation.Cancel(); // the caller's deadline passes while the first attempt fails
            throw new SiloUnavailableException("gone");
        }, () => { }, cancellation.Token));
        Assert.Equal(1, attempts);
    }
}
