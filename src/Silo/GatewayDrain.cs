using Headwise.Silo.Gateway;
using Microsoft.Extensions.Options;

namespace Headwise.Silo;

/// <summary>
/// On SIGTERM, before anything stops: /healthz answers 503 "draining" while the gateway goes on serving for
/// Headwise__DrainSeconds, so that load balancers and Kubernetes endpoints take it out of rotation first; only then does
/// Kestrel stop taking calls (finishing those under way; open DecodeStreams end after their current step,
/// <see cref="DecodeStreamDrain"/>) and the silo leave the cluster. A rolling update loses no call.
/// </summary>
public sealed class GatewayDrain(SiloReadiness readiness, DecodeStreamDrain streams, IOptions<SiloOptions> options, ILogger<GatewayDrain> logger)
    : IHostedLifecycleService
{
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        readiness.MarkDraining();
        var drain = TimeSpan.FromSeconds(Math.Max(0, options.Value.DrainSeconds));
        logger.LogInformation("Stopping: /healthz reports draining; serving on for {Seconds} s before the gateway stops.", drain.TotalSeconds);
        try
        {
            await Task.Delay(drain, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The host's shutdown timeout ran out: stop now.
        }
        // Before Kestrel stops: it waits for every open call, and a DecodeStream does not end by itself.
        streams.End();
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
