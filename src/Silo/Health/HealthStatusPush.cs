using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Headwise.Silo.Health;

/// <summary>
/// Publishes the health report to grpc.health.v1 the moment <see cref="SiloReadiness"/> changes, instead of at the
/// publisher's next tick (every Headwise__HealthPublishSeconds). Watch streams read the publisher's cached status while Check and a Watch's first
/// answer run the checks afresh: without this push, a Watch opened in the 2 s after the silo turned ready got SERVING
/// fresh, then SERVING again from the cache catching up (a change that was none), and a drain reached watchers up to 2 s
/// late.
/// </summary>
public sealed class HealthStatusPush(
    SiloReadiness readiness,
    HealthCheckService checks,
    IEnumerable<IHealthCheckPublisher> publishers,
    ILogger<HealthStatusPush> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        readiness.Changed += OnChanged;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        readiness.Changed -= OnChanged;
        return Task.CompletedTask;
    }

    // MarkReady and MarkDraining stay synchronous; a push that fails leaves the periodic publisher to catch up.
    private void OnChanged() => _ = PublishAsync();

    private async Task PublishAsync()
    {
        try
        {
            // All checks, as the periodic publisher runs them: each publisher filters by its own service mapping.
            var report = await checks.CheckHealthAsync(CancellationToken.None);
            foreach (var publisher in publishers) await publisher.PublishAsync(report, CancellationToken.None);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Publishing the health status after a readiness change failed; the periodic publisher catches up.");
        }
    }
}
