using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>What the catalog persists: every model's resolved spec, its committed weights and the uploads under way.</summary>
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
    /// <summary>The weights the model serves: written once per upload, the commit point of the whole model.</summary>
    [Id(2)] public WeightsVersion Committed { get; set; } = WeightsVersion.None;
    /// <summary>Uploads begun and not yet committed or aborted, with the time each last made progress (UTC).</summary>
    [Id(3)] public Dictionary<Guid, DateTime> Uploads { get; set; } = [];
    /// <summary>Uploads closed without a commit, with when: the catalog's timer drops their staged weights again on every
    /// tick until every layer has, and for a lease after (a stage under way when the upload was closed lands late).</summary>
    [Id(4)] public Dictionary<Guid, DateTime> Abandoned { get; set; } = [];
}
