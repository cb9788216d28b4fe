using Headwise.Contracts;

namespace Headwise.Grains.Forward;

/// <summary>
/// The coordinator's retry of a scatter whose head call failed because a silo died or left: the silo is gone
/// (SiloUnavailableException), refused the message (OrleansMessageRejectionException), or a relay reported the
/// cluster unavailable. Each retry first forgets where the heads were (<c>beforeRetry</c>) so the next attempt
/// finds them re-activated on a live silo, their weights read back from storage. Bounded: at most
/// <see cref="MaxAttempts"/> attempts with exponential backoff (100, 200, 400 ms, about 0.7 s in all), so that a
/// silo not yet declared dead surfaces as UNAVAILABLE for the client to retry, never as a hang. A pass is either
/// answered whole by one attempt or fails; no partial result from an earlier attempt is kept.
/// </summary>
public static class HeadCallRetry
{
    public const int MaxAttempts = 4;
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(100);

    public static bool IsSiloFailure(Exception e) =>
        e is SiloUnavailableException or OrleansMessageRejectionException or HeadwiseException { Code: ErrorCode.Unavailable };

    public static async Task<T> RunAsync<T>(Func<Task<T>> attempt, Action beforeRetry, CancellationToken cancellationToken = default)
    {
        var backoff = FirstBackoff;
        for (int tried = 1; ; tried++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                return await attempt();
            }
            catch (Exception e) when (IsSiloFailure(e) && tried < MaxAttempts)
            {
                await Task.Delay(backoff, cancellationToken);
                backoff *= 2;
                beforeRetry();
            }
        }
    }
}
