using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;

namespace Headwise.Silo.Dashboard;

// The JSON of /api/ (camelCase on the wire). README "Dashboard JSON" documents each field.

/// <summary>GET /api/cluster.</summary>
public sealed record ClusterView(string Silo, DateTime Now, SiloView[] Silos, ModelView[] Models);

/// <param name="Reachable">False when the silo is in the cluster but did not answer in time.</param>
/// <param name="Heads">Head grains active on the silo.</param>
/// <param name="Coordinators">Layer coordinators ("model/layer") active on the silo.</param>
/// <param name="DecodeBatches">The silo's decode batches per layer: last, mean and largest batch size, tokens/s.</param>
/// <param name="ForwardBatches">The same for the small forwards the silo coordinated (those that could batch).</param>
public sealed record SiloView(
    string Silo, string Status, bool Reachable, string? Kernel, string? WebAddress, string? Host, int Cores,
    long WorkingSetBytes, DateTime? StartedUtc, HeadPlacementView[] Heads, string[] Coordinators, BatchView[] DecodeBatches,
    BatchView[] ForwardBatches);

public sealed record HeadPlacementView(string Model, int Layer, int Group);

public sealed record ModelView(string Name, bool Ready, int Layers, int Heads, int Groups, int ModelDim, int HeadDim);

/// <summary>GET /api/traces: the newest forward passes, newest first.</summary>
public sealed record TraceList(string[] UnreachableSilos, TraceSummary[] Traces);

/// <summary>One forward pass, from its headwise.forward span and the headwise.head spans of every silo.</summary>
/// <param name="Straggler">The group that finished last (the pass waited for it), or null without heads.</param>
/// <param name="TokensPerSecond">batch × tokens / duration.</param>
public sealed record TraceSummary(
    string TraceId, DateTime Start, double DurationMs, string Model, int Layer, int Batch, int Tokens, bool Causal,
    bool Attention, string Status, string Coordinator, string[] Silos, double TokensPerSecond, int? Straggler, HeadTiming[] Heads);

/// <param name="Heads">The query heads of the group, "4" or "4,5,6,7".</param>
/// <param name="QueueMs">From the forward span's start to the head span's start (scatter, network, waiting for the grain).</param>
/// <param name="DurationMs">The head span: the call inside the head grain, kernel included.</param>
/// <param name="EndMs">When the head finished, from the forward span's start.</param>
public sealed record HeadTiming(
    int Group, string Heads, string Silo, string Kernel, double ComputeMs, double QueueMs, double DurationMs, double EndMs, string Status);

/// <summary>GET /api/traces/{traceId}: every span of one trace from every silo, depth-first, children by start time.</summary>
public sealed record TraceView(string TraceId, DateTime Start, double DurationMs, string[] UnreachableSilos, SpanView[] Spans);

/// <param name="StartMs">From the trace's first span.</param>
/// <param name="Depth">0 for a root; a span whose parent no silo kept counts as a root.</param>
/// <param name="Attention">Head spans of a request that asked for attention: sequence 0, at most 64×64 per head.</param>
public sealed record SpanView(
    string SpanId, string? ParentSpanId, string Name, string Source, string Kind, string Silo, double StartMs, double DurationMs,
    int Depth, string Status, string? StatusDescription, Dictionary<string, string> Tags, string[] Exceptions, AttentionPreview? Attention);
