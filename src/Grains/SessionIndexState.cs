namespace Headwise.Grains;

/// <summary>What one shard of the session index persists: the open sessions it lists, with when each opened (UTC).</summary>
[GenerateSerializer, Alias("headwise.session-index-state")]
public sealed class SessionIndexState
{
    [Id(0)] public Dictionary<string, DateTime> Opened { get; set; } = new(StringComparer.Ordinal);
}
