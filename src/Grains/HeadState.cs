using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>What a head grain persists: its layer's spec and its group's weights.</summary>
[GenerateSerializer, Alias("headwise.head-state")]
public sealed class HeadState
{
    [Id(0)] public AttentionSpec? Spec { get; set; }
    [Id(1)] public GroupWeights? Weights { get; set; }
}
