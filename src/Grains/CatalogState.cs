using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>What the catalog persists: every model's resolved spec and readiness.</summary>
[GenerateSerializer, Alias("headwise.catalog-state")]
public sealed class CatalogState
{
    [Id(0)] public Dictionary<string, CatalogEntry> Models { get; set; } = new(StringComparer.Ordinal);
}

[GenerateSerializer, Alias("headwise.catalog-entry")]
public sealed class CatalogEntry
{
    [Id(0)] public required AttentionSpec Spec { get; set; }
    [Id(1)] public bool Ready { get; set; }
}
