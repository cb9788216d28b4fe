namespace Headwise.Contracts;

/// <summary>Where one head group of a model lives.</summary>
[GenerateSerializer, Immutable, Alias("headwise.head-location")]
public sealed record HeadLocation(
    [property: Id(0)] int Layer,
    [property: Id(1)] int Group,
    [property: Id(2)] string Silo);

/// <summary>A model as the catalog knows it.</summary>
[GenerateSerializer, Immutable, Alias("headwise.model")]
public sealed record ModelDescription
{
    [Id(0)] public required string Name { get; init; }
    /// <summary>The resolved spec (defaults filled in).</summary>
    [Id(1)] public required AttentionSpec Spec { get; init; }
    /// <summary>True once weights for every layer were uploaded.</summary>
    [Id(2)] public bool Ready { get; init; }
    /// <summary>Where the head groups run; filled by GetModel, empty in listings.</summary>
    [Id(3)] public HeadLocation[] Heads { get; init; } = [];
}
