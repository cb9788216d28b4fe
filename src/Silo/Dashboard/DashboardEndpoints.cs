using Microsoft.Extensions.Options;
using OpenTelemetry.Exporter;
using Orleans.Dashboard;

namespace Headwise.Silo.Dashboard;

/// <summary>
/// The web port's pages: the Headwise dashboard at /, its JSON under /api/, Prometheus text at /metrics and the
/// Orleans Dashboard at /orleans. The page, its script and styles are resources of this assembly (no internet, no CDN).
/// </summary>
public static class DashboardEndpoints
{
    private static readonly Dictionary<string, string> Files = new(StringComparer.Ordinal)
    {
        ["index.html"] = "text/html; charset=utf-8",
        ["dashboard.js"] = "text/javascript; charset=utf-8",
        ["dashboard.css"] = "text/css; charset=utf-8",
        ["favicon.svg"] = "image/svg+xml",
    };

    public static WebApplication MapHeadwiseDashboard(this WebApplication app)
    {
        string web = $"*:{app.Services.GetRequiredService<IOptions<SiloOptions>>().Value.WebPort}";

        app.MapGet("/", () => Page("index.html")).RequireHost(web);
        app.MapGet("/favicon.ico", () => Page("favicon.svg")).RequireHost(web);
        app.MapGet("/dashboard/{file}", (string file) => Files.ContainsKey(file) ? Page(file) : Results.NotFound()).RequireHost(web);

        var api = app.MapGroup("/api").RequireHost(web);
        api.MapGet("/cluster", (DashboardApi dashboard) => dashboard.Cluster());
        api.MapGet("/traces", (DashboardApi dashboard, int? limit) => dashboard.Traces(Math.Clamp(limit ?? 30, 1, 200)));
        api.MapGet("/traces/{traceId}", async (DashboardApi dashboard, string traceId) =>
            await dashboard.Trace(traceId.ToLowerInvariant()) is { } trace
                ? Results.Ok(trace)
                : Results.NotFound(new { error = $"no silo holds trace {traceId}; silos keep their newest traces only." }));

        app.MapPrometheusScrapingEndpoint("/metrics").RequireHost(web);
        app.MapOrleansDashboard("/orleans").RequireHost(web);
        return app;
    }

    private static IResult Page(string file)
    {
        var stream = typeof(DashboardEndpoints).Assembly.GetManifestResourceStream("dashboard/" + file)
            ?? throw new InvalidOperationException($"the dashboard's {file} is missing from the assembly.");
        return Results.Stream(stream, Files[file]);
    }
}
