using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;
using Microsoft.AspNetCore.Http;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Orleans.Dashboard;

namespace Headwise.Silo.Telemetry;

/// <summary>
/// Everything a silo traces and measures, and where it goes: spans of the Headwise source, Orleans' application
/// call spans (which carry the trace from silo to silo) and the gRPC gateway's requests; the Headwise meter. Traces go
/// to the in-memory ring (<see cref="RecentTraces"/>) and, when OTEL_EXPORTER_OTLP_ENDPOINT is set, to OTLP; metrics to
/// the Prometheus scrape endpoint and OTLP. OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG choose the sampler
/// (<see cref="ConfiguredSampler"/>). Also adds the Orleans Dashboard's silo services.
/// </summary>
public static class TelemetryHosting
{
    /// <summary>Orleans' source for calls to application grains; without a listener on it Orleans makes no call span and the trace breaks.</summary>
    public const string OrleansApplicationSource = "Microsoft.Orleans.Application";
    public const string OrleansRuntimeSource = "Microsoft.Orleans.Runtime";
    public const string OrleansMeter = "Microsoft.Orleans";

    public static WebApplicationBuilder AddHeadwiseTelemetry(this WebApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection(TelemetryOptions.Section);
        var options = section.Get<TelemetryOptions>() ?? new TelemetryOptions();
        var sampler = ConfiguredSampler.From(builder.Configuration, out var samplerProblems);
        var problems = options.Problems().Concat(samplerProblems).ToList();
        if (problems.Count > 0)
            throw new InvalidOperationException("Headwise configuration is not usable:\n  " + string.Join("\n  ", problems));
        builder.Services.Configure<TelemetryOptions>(section);
        builder.Services.AddSingleton<RecentTraces>();
        builder.Services.AddSingleton<Dashboard.DashboardApi>();

        // The same silo builder as the host's first UseOrleans call: this only adds the dashboard's grains and services.
        // Its live trace stream (/orleans/Trace) is off: it streams every silo's log lines to anyone on the web port.
        builder.UseOrleans(silo => silo.AddDashboard(dashboard => dashboard.HideTrace = true));

        bool otlp = !string.IsNullOrEmpty(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        bool namedByEnvironment = !string.IsNullOrEmpty(builder.Configuration["OTEL_SERVICE_NAME"]);
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource =>
            {
                if (!namedByEnvironment) resource.AddService("headwise");
            })
            .WithTracing(tracing =>
            {
                tracing.SetSampler(new QuietSampler(sampler));
                tracing.AddSource(HeadwiseTelemetry.Name, OrleansApplicationSource);
                if (options.OrleansRuntimeSpans) tracing.AddSource(OrleansRuntimeSource);
                // Only the gateway's gRPC calls: the dashboard's polling and /metrics scrapes are not worth a trace.
                tracing.AddAspNetCoreInstrumentation(aspNet => aspNet.Filter = IsGrpc);
                tracing.AddProcessor(services => services.GetRequiredService<RecentTraces>());
                if (otlp) tracing.AddOtlpExporter();
            })
            .WithMetrics(metrics =>
            {
                // .NET's own runtime meter: GC collections and pause time, thread-pool queue, allocation rate. A forward
                // pass moves megabyte tensors, and a silo whose passes stall on GC shows it here first.
                metrics.AddMeter(HeadwiseTelemetry.Name, OrleansMeter, "System.Runtime");
                metrics.AddPrometheusExporter();
                if (otlp) metrics.AddOtlpExporter();
            });
        return builder;
    }

    private static bool IsGrpc(HttpContext context) =>
        context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true;
}
