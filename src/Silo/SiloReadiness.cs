namespace Headwise.Silo;

/// <summary>
/// Set once the silo serves requests (and the demo model, when enabled, is loaded), and cleared again when it begins to
/// shut down (<see cref="GatewayDrain"/>); /healthz reads it, so load balancers stop sending before the gateway stops.
/// </summary>
public sealed class SiloReadiness
{
    private volatile bool _ready, _draining;

    public bool IsReady => _ready && !_draining;

    public bool IsDraining => _draining;

    public void MarkReady() => _ready = true;

    public void MarkDraining() => _draining = true;
}
