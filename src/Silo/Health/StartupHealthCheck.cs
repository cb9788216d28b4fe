using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Headwise.Silo.Health;

/// <summary>
/// Started: the silo got ready once (Orleans up, the demo model loaded). It stays healthy while draining, so a startup
/// probe that has passed never turns a graceful stop into a restart.
/// </summary>
public sealed class StartupHealthCheck(SiloReadiness readiness) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(readiness.HasStarted ? HealthCheckResult.Healthy("started") : HealthCheckResult.Unhealthy("starting"));
}
