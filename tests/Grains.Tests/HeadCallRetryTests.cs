using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;

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

    [Fact]
    public async Task Retries_go_on_for_the_budget_spaced_by_backoff_then_the_failure_surfaces()
    {
        int attempts = 0;
        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAsync<HeadwiseException>(() => HeadCallRetry.RunAsync<int>(() =>
        {
            attempts++;
            throw new HeadwiseException(ErrorCode.Unavailable, "relay: silo gone");
        }, () => { }, budget: TimeSpan.FromSeconds(1.5)));
        // 50 + 100 + 200 + 400 + 500 ms of backoff fit in 1.5 s (six attempts on an idle machine, fewer when timers run
        // late: a stall of 1.4 s in the first backoff leaves room for none after the second attempt); it gives up when the
        // next backoff would pass the budget, not after a count, and long before the default budget of 20 s.
        Assert.InRange(attempts, 2, 6);
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(1000) && clock.Elapsed < TimeSpan.FromSeconds(10), $"{attempts} attempts in {clock.Elapsed.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public async Task The_callers_deadline_ends_the_retries()
    {
        using var deadline = new CancellationTokenSource();
        int attempts = 0, forgotten = 0;
        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => HeadCallRetry.RunAsync<int>(() =>
        {
            // The deadline passes 1 ms into the second backoff (100 ms). Timers fire in due order, so however late this
            // machine runs them, the deadline interrupts that wait: no third attempt, and the locations are not
            // forgotten a second time. (A deadline measured in wall time from the first attempt failed once in CI when
            // a stalled timer let it pass inside the first backoff.)
            if (++attempts == 2) deadline.CancelAfter(TimeSpan.FromMilliseconds(1));
            throw new SiloUnavailableException("gone");
        }, () => forgotten++, deadline.Token));
        Assert.Equal(2, attempts);
        Assert.Equal(1, forgotten);
        // Far below the 20 s budget that would end the retries without a deadline.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"{clock.Elapsed.TotalMilliseconds:F0} ms");
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
