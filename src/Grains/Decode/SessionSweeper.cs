using Headwise.Contracts;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Decode;

/// <summary>
/// Ends the sessions nobody coordinates any more. A session's coordinator ends it once idle (its record and stored inputs
/// cleared, every silo's caches dropped); when the coordinator's silo died and the caller never came back, nothing would
/// ever call the session again and its storage would stay for good. Every half idle limit (at least a second, at most
/// five minutes) this silo asks each shard of the session index for the sessions old enough to be idle, and each of those
/// to end itself if it is (<see cref="IDecodeSessionGrain.EndIfIdle"/>): an idle session is ended by an activation
/// rebuilt from its record, a live one answers at once. A session that ends, or finds it has no record, leaves the index
/// itself, in its own turn (an Open of the same id cannot slip in between).
/// </summary>
public sealed class SessionSweeper(IGrainFactory grains, IOptions<DecodeSessionOptions> options, ILogger<SessionSweeper> logger)
    : BackgroundService
{
    private const int SessionsAtOnce = 8;

    /// <summary>Seconds between sweeps: half the idle limit, within 1 s … 5 min.</summary>
    public static double PeriodSeconds(DecodeSessionOptions options) => Math.Clamp(options.IdleSeconds / 2.0, 1, 300);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var period = TimeSpan.FromSeconds(PeriodSeconds(options.Value));
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
                for (int shard = 0; shard < SessionIndex.Shards; shard++)
                    await SweepAsync(shard, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task SweepAsync(int shard, CancellationToken stoppingToken)
    {
        var limits = options.Value;
        try
        {
            var index = grains.GetGrain<ISessionIndexGrain>(shard);
            var candidates = await index.SweepCandidates(limits.IdleSeconds, PeriodSeconds(limits) / 2).WaitAsync(stoppingToken);
            if (candidates.Length == 0) return;
            await Parallel.ForEachAsync(candidates, new ParallelOptions { MaxDegreeOfParallelism = SessionsAtOnce, CancellationToken = stoppingToken },
                async (session, cancellation) =>
                {
                    try
                    {
                        await grains.GetGrain<IDecodeSessionGrain>(session).EndIfIdle().WaitAsync(cancellation);
                    }
                    // A storage client may report its timeout as a cancellation: only the silo's shutdown ends the sweep.
                    catch (Exception exception) when (!cancellation.IsCancellationRequested)
                    {
                        // Its silo is still being declared dead, or storage is failing: the next sweep asks again.
                        logger.LogDebug(exception, "Sweeping decode session {Session} failed.", session);
                    }
                });
        }
        catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
        {
            logger.LogDebug(exception, "Sweeping shard {Shard} of the session index failed.", shard);
        }
    }
}
