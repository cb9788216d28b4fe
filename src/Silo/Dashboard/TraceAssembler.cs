using System.Globalization;
using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;
using Headwise.Silo.Telemetry;

namespace Headwise.Silo.Dashboard;

/// <summary>
/// Puts traces back together from the pieces each silo kept: the same span can arrive from several silos (silos
/// that share a process, as in tests, each see all of its spans), so spans count once by id.
/// </summary>
public static class TraceAssembler
{
    public static TraceSummary[] Summaries(IEnumerable<SpanRecord> spans, int limit) =>
        Distinct(spans)
            .GroupBy(s => s.TraceId)
            .Select(Summary)
            .OfType<TraceSummary>()
            .OrderByDescending(t => t.Start)
            .Take(limit)
            .ToArray();

    public static TraceView? Trace(string traceId, IEnumerable<SpanRecord> spans, string[] unreachableSilos)
    {
        var all = Distinct(spans).Where(s => s.TraceId == traceId).ToList();
        if (all.Count == 0) return null;
        long start = all.Min(s => s.StartTicks);
        double end = all.Max(s => Ms(s.StartTicks - start) + s.DurationMs);
        var ids = all.Select(s => s.SpanId).ToHashSet();
        var children = all.Where(s => s.ParentSpanId is not null && ids.Contains(s.ParentSpanId))
            .GroupBy(s => s.ParentSpanId!)
            .ToDictionary(g => g.Key, g => g.OrderBy(s => s.StartTicks).ToList());
        var roots = all.Where(s => s.ParentSpanId is null || !ids.Contains(s.ParentSpanId)).OrderBy(s => s.StartTicks);

        var ordered = new List<SpanView>(all.Count);
        void Visit(SpanRecord span, int depth)
        {
            ordered.Add(new SpanView(span.SpanId, span.ParentSpanId, span.Name, span.Source, span.Kind, span.Silo,
                Ms(span.StartTicks - start), span.DurationMs, depth, span.Status, span.StatusDescription, span.Tags,
                span.Exceptions, span.Attention));
            if (children.TryGetValue(span.SpanId, out var below))
                foreach (var child in below) Visit(child, depth + 1);
        }
        foreach (var root in roots) Visit(root, 0);
        return new TraceView(traceId, new DateTime(start, DateTimeKind.Utc), end, unreachableSilos, ordered.ToArray());
    }

    private static TraceSummary? Summary(IGrouping<string, SpanRecord> trace)
    {
        var forward = trace.FirstOrDefault(s => s.Name == HeadwiseTelemetry.ForwardSpan);
        if (forward is null) return null;
        var heads = trace.Where(s => s.Name == HeadwiseTelemetry.HeadSpan)
            .Select(h =>
            {
                double queue = Number(h, "headwise.queue_ms");
                return new HeadTiming(
                    (int)Number(h, "headwise.group"), h.Tags.GetValueOrDefault("headwise.heads", ""), h.Silo,
                    h.Tags.GetValueOrDefault("headwise.kernel", ""), Number(h, "headwise.compute_ms"), queue, h.DurationMs,
                    Ms(h.StartTicks - forward.StartTicks) + h.DurationMs, h.Status);
            })
            .OrderBy(h => h.Group)
            .ToArray();
        int batch = (int)Number(forward, "headwise.batch"), tokens = (int)Number(forward, "headwise.tokens");
        bool failed = forward.Status == "error" || heads.Any(h => h.Status == "error");
        return new TraceSummary(
            trace.Key,
            new DateTime(forward.StartTicks, DateTimeKind.Utc),
            forward.DurationMs,
            forward.Tags.GetValueOrDefault("headwise.model", ""),
            (int)Number(forward, "headwise.layer"),
            batch,
            tokens,
            forward.Tags.GetValueOrDefault("headwise.causal") == "True",
            trace.Any(s => s.Attention is not null),
            failed ? "error" : "ok",
            forward.Silo,
            heads.Select(h => h.Silo).Append(forward.Silo).Distinct().Order(StringComparer.Ordinal).ToArray(),
            forward.DurationMs > 0 ? batch * tokens / (forward.DurationMs / 1000) : 0,
            heads.Length == 0 ? null : heads.MaxBy(h => h.EndMs)!.Group,
            heads);
    }

    private static IEnumerable<SpanRecord> Distinct(IEnumerable<SpanRecord> spans) => spans.DistinctBy(s => (s.TraceId, s.SpanId));

    private static double Number(SpanRecord span, string tag) =>
        span.Tags.TryGetValue(tag, out var text) && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : 0;

    private static double Ms(long ticks) => ticks / (double)TimeSpan.TicksPerMillisecond;
}
