using Microsoft.Extensions.Diagnostics.HealthChecks;
using Orleans.Runtime;

namespace Headwise.Silo.Health;

/// <summary>
/// Ready only while this silo is an active member of its cluster as its own membership view says: a silo the others
/// declared dead (it was paused, or cut off) must not take gateway calls it can no longer place.
/// </summary>
public sealed class MembershipHealthCheck(IClusterMembershipService membership, ILocalSiloDetails local) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var status = membership.CurrentSnapshot.GetSiloStatus(local.SiloAddress);
        return Task.FromResult(status == SiloStatus.Active ? HealthCheckResult.Healthy("active cluster member")
            : HealthCheckResult.Unhealthy($"cluster membership is {status}, not Active"));
    }
}
