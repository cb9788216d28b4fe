using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>What a layer persists: its spec, the weights version it serves with its b_O, and the uploads staged.</summary>
[GenerateSerializer, Alias("headwise.layer-state")]
public sealed class LayerState
{
    [Id(0)] public AttentionSpec? Spec { get; set; }
    /// <summary>b_O of <see cref="Version"/>, or null.</summary>
    [Id(1)] public byte[]? OutputBias { get; set; }
    [Id(2)] public bool Ready { get; set; }
    /// <summary>The committed upload this layer serves; every head of a plan must answer with it.</summary>
    [Id(3)] public WeightsVersion Version { get; set; } = WeightsVersion.None;
    /// <summary>Uploads whose every group is staged, with their b_O, waiting for the catalog's commit.</summary>
    [Id(4)] public Dictionary<Guid, StagedLayer> Staged { get; set; } = [];
}

/// <summary>An upload's b_O, staged (null when the spec has no bias).</summary>
[GenerateSerializer, Alias("headwise.staged-layer")]
public sealed record StagedLayer([property: Id(0)] byte[]? OutputBias);
