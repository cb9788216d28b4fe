namespace Headwise.Silo.Telemetry;

/// <summary>
/// How a silo traces and keeps traces, bound once from "Headwise:Telemetry" (Headwise__Telemetry__* variables) and
/// checked at start. Exporters follow the standard OTEL_* variables: OTLP is on when OTEL_EXPORTER_OTLP_ENDPOINT is set.
/// </summary>
public sealed class TelemetryOptions
{
    public const string Section = "Headwise:Telemetry";

    /// <summary>Traces this silo keeps in memory for the dashboard (its own spans of each); the oldest go first.</summary>
    public int RecentTraces { get; set; } = 200;

    /// <summary>Spans kept per trace; a trace that grows past it keeps its first spans.</summary>
    public int MaxSpansPerTrace { get; set; } = 4096;

    /// <summary>Also trace Orleans' runtime calls (Microsoft.Orleans.Runtime: membership, directory, reminders…); noisy.</summary>
    public bool OrleansRuntimeSpans { get; set; }

    /// <summary>Every problem with these settings, each naming its variable; empty when usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (RecentTraces is < 1 or > 100_000)
            problems.Add($"Headwise__Telemetry__RecentTraces is {RecentTraces}; it must be in 1..100000.");
        if (MaxSpansPerTrace is < 16 or > 1_000_000)
            problems.Add($"Headwise__Telemetry__MaxSpansPerTrace is {MaxSpansPerTrace}; it must be in 16..1000000.");
        return problems;
    }
}
