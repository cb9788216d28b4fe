using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>What a head grain persists of the weights it serves: its layer's spec and its group's weights.</summary>
[GenerateSerializer, Alias("headwise.head-state")]
public sealed class HeadState
{
    [Id(0)] public AttentionSpec? Spec { get; set; }
    [Id(1)] public GroupWeights? Weights { get; set; }
    /// <summary>The upload these weights came from (Guid.Empty for state written before versions existed). Passes
    /// and decode sessions name the version they were planned with; a head serving another never answers them.</summary>
    [Id(2)] public Guid Version { get; set; }
    /// <summary>The catalog's commit count for <see cref="Version"/>: a promotion to an older one is ignored.</summary>
    [Id(3)] public long Generation { get; set; }
}

/// <summary>What a head grain persists of uploads under way: their weights, staged beside the served ones.</summary>
[GenerateSerializer, Alias("headwise.head-staging")]
public sealed class HeadStaging
{
    [Id(0)] public AttentionSpec? Spec { get; set; }
    [Id(1)] public Dictionary<Guid, GroupWeights> Uploads { get; set; } = [];
}
