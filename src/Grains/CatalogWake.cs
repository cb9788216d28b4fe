using Headwise.Contracts;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Headwise.Grains;

/// <summary>
/// Wakes the model catalog when a silo dies. The catalog's timer drops the staged weights of uploads whose uploader
/// stopped (the upload lease); a catalog that lived on the dead silo comes back only when something calls it, and passes
/// served from cached plans may not for a long time: a killed uploader's staged weights then stayed for good (seen in
/// CI). Any call re-activates it elsewhere, and its activation restarts the timer.
/// </summary>
public sealed class CatalogWake(IClusterMembershipService membership, IGrainFactory grains, ILogger<CatalogWake> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var dead = new HashSet<SiloAddress>();
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(stoppingToken))
            {
                var newlyDead = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Dead && dead.Add(m.SiloAddress)).ToList();
                if (newlyDead.Count == 0) continue;
                await WakeAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task WakeAsync(CancellationToken stoppingToken)
    {
        for (int attempt = 1; attempt <= 5 && !stoppingToken.IsCancellationRequested; attempt++)
        {
            try
            {
                await grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).List().WaitAsync(stoppingToken);
                return;
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                logger.LogDebug(exception, "Waking the model catalog after a silo died failed (attempt {Attempt}).", attempt);
                await Task.Delay(TimeSpan.FromSeconds(attempt), stoppingToken);
            }
        }
    }
}
