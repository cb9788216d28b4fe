namespace Headwise.Silo;

/// <summary>Set once the silo serves requests (and the demo model, when enabled, is loaded); /healthz reads it.</summary>
public sealed class SiloReadiness
{
    private volatile bool _ready;

    public bool IsReady => _ready;

    public void MarkReady() => _ready = true;
}
