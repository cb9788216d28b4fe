using Headwise.Contracts;

namespace Headwise.Grains.Forward;

/// <summary>
/// The coordinator's retry of a pass whose head call failed because a silo died or left: the silo is gone
/// (SiloUnavailableException), refused the message (OrleansMessageRejectionException), or a relay reported the
/// cluster unavailable. Each retry first forgets where the heads were (<c>beforeRetry</c>) so the next attempt
/// finds them re-activated on a live silo, their weights read back from storage. Bounded by the caller's deadline (its
/// token) and by <see cref="Budget"/>, not by a count: a silo takes membership about 2.5 s to declare dead, and a caller
/// that does not retry on its own must not see the seconds in between as failures. Backoff 50 ms doubling to 500 ms. A
/// pass is either answered whole by one attempt or fails; no partial result from an earlier attempt is kept.
/// </summary>
public static class HeadCallRetry
{
    /// <summary>How long a caller without a deadline is retried for, below Orleans' 30 s response timeout.</summary>
    public static readonly TimeSpan Budget = TimeSpan.FromSeconds(20);
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMilliseconds(500);

    public static bool IsSiloFailure(Exception e) =>
        e is SiloUnavailableException or OrleansMessageRejectionException or HeadwiseException { Code: ErrorCode.Unavailable };

    /// <param name="budget">How long to go on retrying at most (<see cref="Budget"/> when null).</param>
    /// <param name="time">The clock of the backoff and the budget (the system's when null).</param>
    public static async Task<T> RunAsync<T>(Func<Task<T>> attempt, Action beforeRetry, CancellationToken cancellationToken = default,
        TimeSpan? budget = null, TimeProvider? time = null)
    {
        var limit = budget ?? Budget;
        var clock = time ?? TimeProvider.System;
        long started = clock.GetTimestamp();
        var backoff = FirstBackoff;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                return await attempt();
            }
            catch (Exception e) when (IsSiloFailure(e) && clock.GetElapsedTime(started) + backoff < limit)
            {
                cancellationToken.ThrowIfCancellationRequested();
                await Task.Delay(backoff, clock, cancellationToken);
                backoff = backoff * 2 < MaxBackoff ? backoff * 2 : MaxBackoff;
                beforeRetry();
            }
        }
    }
}
