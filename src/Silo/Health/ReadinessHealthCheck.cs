using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Headwise.Silo.Health;

/// <summary>
/// Ready: the silo serves (the demo model, when enabled, is loaded) and is not draining. Unhealthy answers say which:
/// "starting" or "draining", the words /healthz has always answered with.
/// </summary>
public sealed class ReadinessHealthCheck(SiloReadiness readiness) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(readiness.IsReady ? HealthCheckResult.Healthy("ok")
            : HealthCheckResult.Unhealthy(readiness.IsDraining ? "draining" : "starting"));
}
