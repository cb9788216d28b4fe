namespace Headwise.Contracts;

/// <summary>What one forward pass sent to and received from one silo.</summary>
public sealed record SiloTraffic
{
    public required string Silo { get; init; }
    /// <summary>Head groups of the layer on that silo.</summary>
    public required int Groups { get; init; }
    /// <summary>Bytes of X sent to the silo (0 for the coordinator's own silo).</summary>
    public long BytesSent { get; init; }
    /// <summary>Bytes of Z (and attention, when asked for) received from the silo.</summary>
    public long BytesReceived { get; init; }
}
