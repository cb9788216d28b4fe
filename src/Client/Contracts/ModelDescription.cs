namespace Headwise.Contracts;

/// <summary>Where one head group of a model lives.</summary>
public sealed record HeadLocation(
    int Layer,
    int Group,
    string Silo);

/// <summary>A model as the catalog knows it.</summary>
public sealed record ModelDescription
{
    public required string Name { get; init; }
    /// <summary>The resolved spec (defaults filled in).</summary>
    public required AttentionSpec Spec { get; init; }
    /// <summary>True once weights for every layer were uploaded.</summary>
    public bool Ready { get; init; }
    /// <summary>Where the head groups run; filled by GetModel, empty in listings.</summary>
    public HeadLocation[] Heads { get; init; } = [];
}
