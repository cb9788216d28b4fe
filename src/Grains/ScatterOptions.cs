using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>How the coordinator spreads a forward pass over silos (Headwise__Scatter, Headwise__WireFormat, Headwise__RebalanceIdleSeconds).</summary>
public sealed class ScatterOptions
{
    /// <summary>PerSilo sends X once to each remote silo, whose relay calls its local heads; PerHead sends it to every head.</summary>
    public ScatterMode Scatter { get; set; } = ScatterMode.PerSilo;

    /// <summary>Bf16 halves the bytes of X and Z between silos for every request, not only those that ask for it.</summary>
    public WireFormat WireFormat { get; set; } = WireFormat.F32;

    /// <summary>A layer whose heads were idle this long re-balances them when the silo set changed; 0 turns that off.</summary>
    public int RebalanceIdleSeconds { get; set; } = 10;
}

/// <summary>How X reaches remote head grains.</summary>
public enum ScatterMode { PerSilo, PerHead }
