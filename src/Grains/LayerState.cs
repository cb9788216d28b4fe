using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>What a layer coordinator persists: its spec, b_O, and whether every head holds weights.</summary>
[GenerateSerializer, Alias("headwise.layer-state")]
public sealed class LayerState
{
    [Id(0)] public AttentionSpec? Spec { get; set; }
    [Id(1)] public byte[]? OutputBias { get; set; }
    [Id(2)] public bool Ready { get; set; }
}
