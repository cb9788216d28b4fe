using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;

namespace Headwise.Silo.Telemetry;

/// <summary>One finished span as a silo keeps it for the dashboard, and as silos send it to each other.</summary>
[GenerateSerializer, Immutable, Alias("headwise.span-record")]
public sealed record SpanRecord
{
    /// <summary>W3C trace id, 32 hex digits.</summary>
    [Id(0)] public required string TraceId { get; init; }
    /// <summary>16 hex digits.</summary>
    [Id(1)] public required string SpanId { get; init; }
    /// <summary>The parent's span id, or null for a root span.</summary>
    [Id(2)] public string? ParentSpanId { get; init; }
    [Id(3)] public required string Name { get; init; }
    /// <summary>The ActivitySource: Headwise, Microsoft.Orleans.Application, Microsoft.AspNetCore…</summary>
    [Id(4)] public required string Source { get; init; }
    /// <summary>Internal, Server, Client, Producer or Consumer.</summary>
    [Id(5)] public required string Kind { get; init; }
    /// <summary>Start, UTC ticks.</summary>
    [Id(6)] public long StartTicks { get; init; }
    [Id(7)] public double DurationMs { get; init; }
    /// <summary>unset, ok or error.</summary>
    [Id(8)] public required string Status { get; init; }
    [Id(9)] public string? StatusDescription { get; init; }
    /// <summary>The silo whose process recorded the span.</summary>
    [Id(10)] public required string RecordedBy { get; init; }
    [Id(11)] public required Dictionary<string, string> Tags { get; init; }
    /// <summary>"type: message" of each exception event.</summary>
    [Id(12)] public string[] Exceptions { get; init; } = [];
    /// <summary>A head span's attention picture, when its request asked for attention.</summary>
    [Id(13)] public AttentionPreview? Attention { get; init; }

    /// <summary>The silo the span ran on: its headwise.silo tag, else the silo that recorded it.</summary>
    public string Silo => Tags.TryGetValue("headwise.silo", out var silo) ? silo : RecordedBy;
}
