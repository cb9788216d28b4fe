namespace Headwise.Contracts;

/// <summary>The coordinator's request to one head grain. The same instance goes to every head.</summary>
[GenerateSerializer, Immutable, Alias("headwise.head-work")]
public sealed record HeadWork
{
    [Id(0)] public required int Batch { get; init; }
    [Id(1)] public required int Tokens { get; init; }
    /// <summary>X: [B, T, D] float32 bytes.</summary>
    [Id(2)] public required byte[] Input { get; init; }
    [Id(3)] public bool Causal { get; init; }
    [Id(4)] public int[] Lengths { get; init; } = [];
    [Id(5)] public bool ReturnAttention { get; init; }
    /// <summary>How <see cref="Input"/> is encoded, and how Z should come back.</summary>
    [Id(6)] public WireFormat Wire { get; init; }
    /// <summary>Names this pass, so that its coordinator can call it off on every silo (<see cref="ISiloRelayGrain.Cancel"/>).</summary>
    [Id(7)] public Guid ForwardId { get; init; }
}
