using System.Diagnostics;
using System.Globalization;
using Headwise.Grains;
using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;
using Microsoft.Extensions.Options;
using OpenTelemetry;

namespace Headwise.Silo.Telemetry;

/// <summary>
/// The in-memory ring of this silo's recent traces: an OpenTelemetry processor that keeps every finished span of
/// the last <see cref="TelemetryOptions.RecentTraces"/> traces, grouped by trace id. Each silo holds only the spans
/// that ended in its process; the dashboard asks every silo (<see cref="SiloTelemetryGrain"/>) and merges them.
/// </summary>
public sealed class RecentTraces(IOptions<TelemetryOptions> options, IServiceProvider services) : BaseProcessor<Activity>
{
    private readonly object _lock = new();
    private readonly Dictionary<ActivityTraceId, Trace> _traces = new();
    private readonly LinkedList<ActivityTraceId> _order = new(); // oldest first
    private string? _silo;

    private sealed class Trace(LinkedListNode<ActivityTraceId> node)
    {
        public readonly LinkedListNode<ActivityTraceId> Node = node;
        public readonly List<SpanRecord> Spans = [];
        public bool HasHeadwiseSpan;
    }

    public override void OnEnd(Activity activity)
    {
        if (!activity.Recorded) return;
        var record = ToRecord(activity);
        int maxSpans = options.Value.MaxSpansPerTrace;
        lock (_lock)
        {
            if (!_traces.TryGetValue(activity.TraceId, out var trace))
            {
                trace = new Trace(_order.AddLast(activity.TraceId));
                _traces.Add(activity.TraceId, trace);
                while (_traces.Count > options.Value.RecentTraces)
                {
                    _traces.Remove(_order.First!.Value);
                    _order.RemoveFirst();
                }
            }
            if (trace.Spans.Count < maxSpans) trace.Spans.Add(record);
            trace.HasHeadwiseSpan |= record.Source == HeadwiseTelemetry.Name;
        }
    }

    /// <summary>The Headwise spans (forward, heads, output projection) of the newest <paramref name="traces"/> traces that have any.</summary>
    public SpanRecord[] RecentHeadwiseSpans(int traces)
    {
        var spans = new List<SpanRecord>();
        lock (_lock)
        {
            int taken = 0;
            for (var node = _order.Last; node is not null && taken < traces; node = node.Previous)
            {
                var trace = _traces[node.Value];
                if (!trace.HasHeadwiseSpan) continue;
                spans.AddRange(trace.Spans.Where(s => s.Source == HeadwiseTelemetry.Name));
                taken++;
            }
        }
        return spans.ToArray();
    }

    /// <summary>Every span this silo kept of one trace; empty when it has none (or they were evicted).</summary>
    public SpanRecord[] TraceSpans(string traceId)
    {
        if (traceId.Length != 32 || !traceId.All(char.IsAsciiHexDigitLower)) return [];
        var id = ActivityTraceId.CreateFromString(traceId);
        lock (_lock)
            return _traces.TryGetValue(id, out var trace) ? trace.Spans.ToArray() : [];
    }

    private SpanRecord ToRecord(Activity activity)
    {
        var tags = new Dictionary<string, string>();
        foreach (var (key, value) in activity.TagObjects)
            if (value is not null)
                tags[key] = Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
        var exceptions = activity.Events
            .Where(e => e.Name == "exception")
            .Select(e => $"{Tag(e, "exception.type")}: {Tag(e, "exception.message")}")
            .ToList();
        // Orleans records a failed call as tags rather than an event.
        if (tags.TryGetValue("exception.type", out var type))
            exceptions.Add($"{type}: {tags.GetValueOrDefault("exception.message")}");
        tags.Remove("exception.stacktrace");

        return new SpanRecord
        {
            TraceId = activity.TraceId.ToHexString(),
            SpanId = activity.SpanId.ToHexString(),
            ParentSpanId = activity.ParentSpanId == default ? null : activity.ParentSpanId.ToHexString(),
            Name = activity.DisplayName,
            Source = activity.Source.Name,
            Kind = activity.Kind.ToString(),
            StartTicks = activity.StartTimeUtc.Ticks,
            DurationMs = activity.Duration.TotalMilliseconds,
            Status = activity.Status switch
            {
                ActivityStatusCode.Error => "error",
                ActivityStatusCode.Ok => "ok",
                _ => "unset",
            },
            StatusDescription = activity.StatusDescription,
            RecordedBy = _silo ??= services.GetService<SiloIdentity>()?.Name ?? Environment.MachineName,
            Tags = tags,
            Exceptions = exceptions.ToArray(),
            Attention = activity.GetCustomProperty(HeadwiseTelemetry.AttentionProperty) as AttentionPreview,
        };
    }

    private static string Tag(ActivityEvent e, string key) =>
        e.Tags.FirstOrDefault(t => t.Key == key).Value?.ToString() ?? "";
}
