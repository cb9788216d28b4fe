using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>What a head grain persists: its layer's spec and its group's weights.</summary>
[GenerateSerializer, Alias("headwise.head-state")]
public sealed class HeadState
{
    [Id(0)] public AttentionSpec? Spec { get; set; }
    [Id(1)] public GroupWeights? Weights { get; set; }
    /// <summary>New with every store of the weights (Guid.Empty for state written before versions existed): a decode
    /// session compares it step to step, so a re-upload under an open session is an error, never a mixed answer.</summary>
    [Id(2)] public Guid Version { get; set; }
}
