using Grpc.Core;

namespace Headwise.Client;

/// <summary>
/// Retries of Forward on UNAVAILABLE, with gRPC's retry policy's backoff (random in [0, min(initial × 2ⁿ, max)), the
/// first retry n = 0), but without its retry buffer. Grpc.Net.Client keeps a retried call's request as a new array for
/// the call's life: at T = 1024 that was a 3 MB copy and a large-object allocation on every pass, retried or not, and a
/// client on the silo's machine took the cores the pass needed (10–13% of its CPU samples, and 25 against 15 gen-2
/// collections per 100 passes). Here a retry sends the same request message again, serialized once more from the
/// caller's X. Every attempt shares the call's one deadline.
/// </summary>
internal sealed class ForwardRetry(int maxAttempts, TimeSpan initialBackoff, TimeSpan maxBackoff)
{
    /// <summary>One attempt, no retries: a client on a channel the caller configured.</summary>
    public static readonly ForwardRetry None = new(1, TimeSpan.Zero, TimeSpan.Zero);

    public async Task<T> RunAsync<T>(Func<Task<T>> attempt, CancellationToken cancellationToken)
    {
        var backoff = initialBackoff;
        for (int attempts = 1; ; attempts++)
        {
            try
            {
                return await attempt();
            }
            catch (RpcException exception) when (exception.StatusCode == StatusCode.Unavailable && attempts < maxAttempts
                                                 && !cancellationToken.IsCancellationRequested)
            {
            }
            await Task.Delay(backoff * Random.Shared.NextDouble(), cancellationToken);
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, maxBackoff.Ticks));
        }
    }
}
