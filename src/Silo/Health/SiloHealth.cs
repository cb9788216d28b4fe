using System.Net;
using Grpc.AspNetCore.HealthChecks;
using Headwise.Silo.Gateway;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Headwise.Silo.Health;

/// <summary>
/// The silo's health, one set of ASP.NET Core health checks read three ways. On the web port: /healthz/live (the process
/// answers: no check), /healthz/startup (ready once), /healthz/ready (ready, an active cluster member, not draining) and
/// /healthz, which is /healthz/ready under its old name. On the gRPC port: grpc.health.v1.Health, whose overall service ""
/// and "headwise.v1.Attention" are SERVING exactly when /healthz/ready is 200; and, when
/// <see cref="GatewayOptions.ServesReflection"/>, gRPC server reflection.
/// </summary>
public static class SiloHealth
{
    private const string Ready = "ready";
    private const string Startup = "startup";

    /// <summary>The gRPC service names grpc.health.v1 answers for: the server as a whole, and the gateway.</summary>
    public static readonly IReadOnlyList<string> GrpcServices = ["", V1.Attention.Descriptor.FullName];

    public static void AddHeadwiseHealth(this WebApplicationBuilder builder, SiloOptions options, GatewayOptions gateway)
    {
        builder.Services.AddHealthChecks()
            .AddCheck<ReadinessHealthCheck>("silo", tags: [Ready])
            .AddCheck<MembershipHealthCheck>("membership", tags: [Ready])
            .AddCheck<StartupHealthCheck>("startup", tags: [Startup]);
        builder.Services.AddGrpcHealthChecks(grpc =>
        {
            grpc.Services.Clear();
            foreach (var service in GrpcServices) grpc.Services.Map(service, result => result.Tags.Contains(Ready));
        });
        builder.Services.AddHostedService<HealthStatusPush>();
        // Watch streams follow the publisher: readiness changes at once (HealthStatusPush), membership within a couple of seconds.
        builder.Services.Configure<HealthCheckPublisherOptions>(publisher =>
        {
            publisher.Delay = TimeSpan.FromSeconds(1);
            publisher.Period = TimeSpan.FromSeconds(options.HealthPublishSeconds);
        });
        if (gateway.ServesReflection(IPAddress.Parse(options.ListenAddress))) builder.Services.AddGrpcReflection();
        // "starting" and "draining" are states, not faults: without this every run of the checks while the silo starts
        // or drains (every probe, every 2 s for Watch) logs an error. The probes' answers say the same.
        builder.Logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.Critical);
    }

    public static void MapHeadwiseHealth(this WebApplication app, SiloOptions options, GatewayOptions gateway)
    {
        string web = $"*:{options.WebPort}", grpc = $"*:{options.GrpcPort}";
        app.MapHealthChecks("/healthz", Answer(check => check.Tags.Contains(Ready))).RequireHost(web);
        app.MapHealthChecks("/healthz/ready", Answer(check => check.Tags.Contains(Ready))).RequireHost(web);
        app.MapHealthChecks("/healthz/startup", Answer(check => check.Tags.Contains(Startup))).RequireHost(web);
        app.MapHealthChecks("/healthz/live", Answer(_ => false)).RequireHost(web);
        app.MapGrpcHealthChecksService().RequireHost(grpc);
        if (gateway.ServesReflection(IPAddress.Parse(options.ListenAddress))) app.MapGrpcReflectionService().RequireHost(grpc);
    }

    // 200 "ok", or 503 with what is wrong ("starting", "draining", "cluster membership is Dead, not Active").
    private static HealthCheckOptions Answer(Func<HealthCheckRegistration, bool> predicate) => new()
    {
        Predicate = predicate,
        ResponseWriter = (context, report) =>
        {
            context.Response.ContentType = "text/plain; charset=utf-8";
            var problems = report.Entries.Values.Where(e => e.Status != HealthStatus.Healthy).Select(e => e.Description).ToList();
            return context.Response.WriteAsync(problems.Count == 0 ? "ok" : string.Join("; ", problems));
        },
    };
}
