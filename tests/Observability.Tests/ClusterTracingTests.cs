using System.Diagnostics;
using Grpc.Core;
using Headwise.Client;
using Headwise.Contracts;
using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Headwise.Observability.Tests;

/// <summary>
/// One forward pass over three silos is one trace: the gateway's span at its root, Orleans' call spans linking
/// silo to silo, every head span below the forward span, and the heads' silo tags naming more than one silo.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterTracingTests(ThreeSiloCluster cluster)
{
    private static readonly AttentionSpec Spec = new() { ModelDim = 96, HeadCount = 6, Bias = true };

    [Fact]
    public async Task A_forward_through_grpc_is_one_trace_rooted_at_the_gateway_with_every_head_below_the_forward_span()
    {
        await cluster.CreateModel("trace-grpc", Spec);
        var result = await cluster.Forward("trace-grpc", Spec.ModelDim, tokens: 16, silo: 1);

        var traceId = ActivityTraceId.CreateFromString(result.TraceId);
        var spans = await cluster.Spans.WaitFor(all => all.Any(s => s.TraceId == traceId && s.ParentSpanId == default), "the gateway span");
        var trace = spans.Where(s => s.TraceId == traceId).ToList();

        // One trace id: every Headwise span this model's forward made carries the trace id the caller got back.
        var headwise = spans.Where(s => s.Source.Name == HeadwiseTelemetry.Name && Tag(s, "headwise.model") == "trace-grpc").ToList();
        Assert.NotEmpty(headwise);
        Assert.All(headwise, s => Assert.Equal(traceId, s.TraceId));

        // The root is the gateway's gRPC request, on the silo the client called.
        var root = Assert.Single(trace, s => s.ParentSpanId == default);
        Assert.Equal("Microsoft.AspNetCore", root.Source.Name);
        Assert.Equal(ActivityKind.Server, root.Kind);
        Assert.Equal("/headwise.v1.Attention/Forward", Tag(root, "url.path"));

        var forward = Assert.Single(trace, s => s.DisplayName == HeadwiseTelemetry.ForwardSpan);
        var heads = trace.Where(s => s.DisplayName == HeadwiseTelemetry.HeadSpan).ToList();
        Assert.Equal(Spec.HeadCount, heads.Count);
        var byId = trace.ToDictionary(s => s.SpanId);
        Assert.All(heads, head => Assert.Contains(forward.SpanId, Ancestors(head, byId)));
        Assert.Contains(root.SpanId, Ancestors(forward, byId));
        Assert.All(trace.Where(s => s != root), s => Assert.True(byId.ContainsKey(s.ParentSpanId), $"{s.DisplayName} has a parent outside the trace"));

        // The heads ran on more than one silo, and their spans say where, as the answer does.
        var silos = heads.Select(h => Tag(h, "headwise.silo") ?? "").ToHashSet();
        Assert.True(silos.Count >= 2, $"head spans name {silos.Count} silo(s): {string.Join(", ", silos)}");
        Assert.Equal(result.Heads.Select(h => h.Silo).ToHashSet(), silos);
        // Crossing silos shows as Orleans call spans: a client span on the caller's side, a server span on the head's.
        Assert.Contains(trace, s => s.Source.Name == "Microsoft.Orleans.Application" && s.Kind == ActivityKind.Client && s.DisplayName.Contains("IHeadGrain"));
        Assert.Contains(trace, s => s.Source.Name == "Microsoft.Orleans.Application" && s.Kind == ActivityKind.Server && s.DisplayName.Contains("IHeadGrain"));

        // The head spans carry what the dashboard shows.
        Assert.All(heads, head =>
        {
            foreach (var tag in new[] { "headwise.layer", "headwise.group", "headwise.heads", "headwise.kernel", "headwise.tokens", "headwise.flops", "headwise.compute_ms", "headwise.queue_ms" })
                Assert.False(string.IsNullOrEmpty(Tag(head, tag)), $"head span lacks {tag}");
        });
        var projection = Assert.Single(trace, s => s.DisplayName == HeadwiseTelemetry.OutputProjectionSpan);
        Assert.Equal(forward.SpanId, projection.ParentSpanId);
        Assert.Equal(ActivityStatusCode.Unset, forward.Status);
    }

    [Fact]
    public async Task A_forward_through_an_orleans_client_with_activity_propagation_is_one_trace()
    {
        await cluster.CreateModel("trace-orleans", Spec);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(client =>
        {
            client.UseLocalhostClustering(cluster.GatewayPort(2));
            client.AddActivityPropagation();
        });
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            await using IAttentionClient client = new OrleansAttentionClient(host.Services.GetRequiredService<IClusterClient>());
            var x = new float[8 * Spec.ModelDim];
            var result = await client.ForwardAsync("trace-orleans", new AttentionInput { Input = new FloatTensor(x, 1, 8, Spec.ModelDim) });

            var traceId = ActivityTraceId.CreateFromString(result.TraceId);
            var spans = await cluster.Spans.WaitFor(all => all.Any(s => s.TraceId == traceId && s.ParentSpanId == default), "the client span");
            var trace = spans.Where(s => s.TraceId == traceId).ToList();
            var byId = trace.ToDictionary(s => s.SpanId);

            // The client's call span is the root: the client passed the context on.
            var root = Assert.Single(trace, s => s.ParentSpanId == default);
            Assert.Equal(ActivityKind.Client, root.Kind);
            Assert.Contains("IForwardCoordinatorGrain", root.DisplayName);
            var forward = Assert.Single(trace, s => s.DisplayName == HeadwiseTelemetry.ForwardSpan);
            var heads = trace.Where(s => s.DisplayName == HeadwiseTelemetry.HeadSpan).ToList();
            Assert.Equal(Spec.HeadCount, heads.Count);
            Assert.All(heads, head => Assert.Contains(forward.SpanId, Ancestors(head, byId)));
            Assert.True(heads.Select(h => Tag(h, "headwise.silo")).Distinct().Count() >= 2);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task A_failed_forward_ends_its_span_with_status_error_and_the_exception()
    {
        await cluster.CreateModel("trace-failing", Spec);
        await cluster.Forward("trace-failing", Spec.ModelDim, tokens: 4);
        // Head 0 forgets its weights: the layer is still ready, so the forward pass starts and then fails in the head.
        await cluster.Grains.GetGrain<IHeadGrain>(GrainKeys.Head("trace-failing", 0, 0)).Clear();

        var error = await Assert.ThrowsAsync<HeadwiseException>(() => cluster.Forward("trace-failing", Spec.ModelDim, tokens: 4));
        Assert.Equal(ErrorCode.FailedPrecondition, error.Code);

        var spans = await cluster.Spans.WaitFor(
            all => all.Any(s => s.DisplayName == HeadwiseTelemetry.ForwardSpan && Tag(s, "headwise.model") == "trace-failing" && s.Status == ActivityStatusCode.Error),
            "the failed forward span");
        var forward = spans.Single(s => s.DisplayName == HeadwiseTelemetry.ForwardSpan && Tag(s, "headwise.model") == "trace-failing" && s.Status == ActivityStatusCode.Error);
        Assert.Contains("no weights", forward.StatusDescription);
        var exception = Assert.Single(forward.Events, e => e.Name == "exception");
        Assert.Equal(typeof(HeadwiseException).FullName, exception.Tags.Single(t => t.Key == "exception.type").Value);
        Assert.Equal("FailedPrecondition", Tag(forward, "error.type"));
        Assert.Null(Tag(forward, "headwise.error_code"));

        // The gateway's span of the same trace reports the gRPC status the caller saw.
        var gateway = await cluster.Spans.WaitFor(all => all.Any(s => s.TraceId == forward.TraceId && s.ParentSpanId == default), "the gateway span");
        var root = gateway.Single(s => s.TraceId == forward.TraceId && s.ParentSpanId == default);
        Assert.Equal(((int)StatusCode.FailedPrecondition).ToString(), Tag(root, "grpc.status_code"));
    }

    [Fact]
    public async Task A_silo_with_OTEL_EXPORTER_OTLP_ENDPOINT_sends_its_spans_and_metrics_over_otlp()
    {
        await cluster.CreateModel("trace-otlp", Spec);
        var result = await cluster.Forward("trace-otlp", Spec.ModelDim, tokens: 8, silo: 2);

        // OTLP protobuf carries the trace id as 16 raw bytes and names as UTF-8.
        await cluster.Otlp.WaitForPost("/v1/traces", Convert.FromHexString(result.TraceId), "headwise.head"u8.ToArray(), "trace-otlp"u8.ToArray());
        await cluster.Otlp.WaitForPost("/v1/metrics", "headwise.head.compute"u8.ToArray(), "trace-otlp"u8.ToArray());
    }

    private static string? Tag(Activity span, string key) => span.GetTagItem(key)?.ToString();

    private static IEnumerable<ActivitySpanId> Ancestors(Activity span, Dictionary<ActivitySpanId, Activity> byId)
    {
        for (var parent = span.ParentSpanId; byId.TryGetValue(parent, out var next); parent = next.ParentSpanId)
            yield return parent;
    }
}
