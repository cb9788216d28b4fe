using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;

namespace Headwise.Grains.Tests;

/// <summary>The coordinator's retry of a scatter whose silo died: bounded, with backoff, cancellable, and only for silo failures.</summary>
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
    public async Task Retries_are_bounded_and_spaced_by_backoff()
    {
        int attempts = 0;
        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAsync<HeadwiseException>(() => HeadCallRetry.RunAsync<int>(() =>
        {
            attempts++;
            throw new HeadwiseException(ErrorCode.Unavailable, "relay: silo gone");
        }, () => { }));
        Assert.Equal(HeadCallRetry.MaxAttempts, attempts);
        // 100 + 200 + 400 ms between the four attempts.
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(650), $"{clock.Elapsed.TotalMilliseconds:F0} ms");
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
