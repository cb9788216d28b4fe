namespace Headwise.Silo;

/// <summary>
/// Set once the silo serves requests (and the demo model, when enabled, is loaded), and cleared again when it begins to
/// shut down (<see cref="GatewayDrain"/>). The readiness checks (/healthz, /healthz/ready and grpc.health.v1) read it,
/// so load balancers stop sending before the gateway stops; the startup check reads <see cref="HasStarted"/>.
/// </summary>
public sealed class SiloReadiness
{
    private volatile bool _ready, _draining;

    public bool IsReady => _ready && !_draining;

    public bool IsDraining => _draining;

    /// <summary>Ready once, draining or not since.</summary>
    public bool HasStarted => _ready;

    /// <summary>Raised after either flag changes, on the caller's thread.</summary>
    public event Action? Changed;

    public void MarkReady()
    {
        _ready = true;
        Changed?.Invoke();
    }

    public void MarkDraining()
    {
        _draining = true;
        Changed?.Invoke();
    }
}
