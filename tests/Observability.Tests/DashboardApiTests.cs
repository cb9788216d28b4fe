using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Headwise.Contracts;
using Headwise.Silo.Dashboard;

namespace Headwise.Observability.Tests;

/// <summary>
/// The dashboard's JSON: any silo answers for the whole cluster, putting a trace back together from the spans
/// each silo kept, and the dashboard's own polling leaves no traces behind.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DashboardApiTests(ThreeSiloCluster cluster)
{
    private static readonly AttentionSpec Spec = new() { ModelDim = 48, HeadCount = 6, KvHeadCount = 3 };
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    [Fact]
    public async Task Any_silo_serves_the_cluster_and_a_trace_merged_from_every_silo()
    {
        await cluster.CreateModel("api", Spec);
        var result = await cluster.Forward("api", Spec.ModelDim, tokens: 12, attention: true, silo: 0);
        await cluster.Spans.WaitFor(all => all.Any(s => s.TraceId.ToHexString() == result.TraceId && s.ParentSpanId == default), "the gateway span");
        using var http = new HttpClient();

        // Asked on silo 2, the cluster view has all three silos, and each head group where the answer says it ran.
        var view = (await http.GetFromJsonAsync<ClusterView>(new Uri(cluster.WebAddress(2), "api/cluster"), Json))!;
        Assert.Equal(cluster.SiloName(2), view.Silo);
        Assert.Equal(Enumerable.Range(0, ThreeSiloCluster.SiloCount).Select(cluster.SiloName).Order(), view.Silos.Select(s => s.Silo).Order());
        Assert.All(view.Silos, s =>
        {
            Assert.True(s.Reachable);
            Assert.Equal("simd", s.Kernel);
            Assert.Equal("Active", s.Status);
        });
        foreach (var head in result.Heads)
            Assert.Contains(view.Silos.Single(s => s.Silo == head.Silo).Heads, h => h.Model == "api" && h.Layer == 0 && h.Group == head.Group);
        Assert.Contains(view.Models, m => m is { Name: "api", Heads: 6, Groups: 3, Ready: true });

        // The list, asked on silo 1: the pass with its three groups, their silos and the straggler.
        var list = (await http.GetFromJsonAsync<TraceList>(new Uri(cluster.WebAddress(1), "api/traces?limit=50"), Json))!;
        var summary = Assert.Single(list.Traces, t => t.TraceId == result.TraceId);
        Assert.Equal(("api", 0, 1, 12, true, true, "ok"), (summary.Model, summary.Layer, summary.Batch, summary.Tokens, summary.Causal, summary.Attention, summary.Status));
        Assert.Equal(new[] { 0, 1, 2 }, summary.Heads.Select(h => h.Group));
        Assert.Equal(new[] { "0,1", "2,3", "4,5" }, summary.Heads.Select(h => h.Heads));
        Assert.Equal(result.Heads.OrderBy(h => h.Group).Select(h => h.Silo), summary.Heads.Select(h => h.Silo));
        Assert.Equal(summary.Heads.MaxBy(h => h.EndMs)!.Group, summary.Straggler);
        Assert.All(summary.Heads, h => Assert.True(h.ComputeMs > 0 && h.DurationMs >= h.ComputeMs && h.EndMs <= summary.DurationMs + 1));

        // One trace, asked on silo 2: exactly the spans the exporter saw, each once, one root, depths by parent.
        var trace = (await http.GetFromJsonAsync<TraceView>(new Uri(cluster.WebAddress(2), $"api/traces/{result.TraceId}"), Json))!;
        var exported = cluster.Spans.OfTrace(ActivityTraceId.CreateFromString(result.TraceId));
        Assert.Equal(exported.Select(s => s.SpanId.ToHexString()).Order(), trace.Spans.Select(s => s.SpanId).Order());
        var root = Assert.Single(trace.Spans, s => s.Depth == 0);
        Assert.Equal("Microsoft.AspNetCore", root.Source);
        var byId = trace.Spans.ToDictionary(s => s.SpanId);
        Assert.All(trace.Spans.Where(s => s.Depth > 0), s => Assert.Equal(byId[s.ParentSpanId!].Depth + 1, s.Depth));
        var heads = trace.Spans.Where(s => s.Name == "headwise.head").ToList();
        Assert.Equal(3, heads.Count);

        // Each head span brings its attention picture: sequence 0, T×T, rows that sum to 1 with nothing above the diagonal.
        Assert.All(heads, h =>
        {
            Assert.NotNull(h.Attention);
            Assert.Equal(12, h.Attention!.Size);
            Assert.Equal(2, h.Attention.Heads.Length);
            foreach (var matrix in h.Attention.Values)
                for (int q = 0; q < 12; q++)
                {
                    Assert.Equal(1.0, matrix.Skip(q * 12).Take(12).Sum(), 4);
                    Assert.All(matrix.Skip(q * 12 + q + 1).Take(11 - q), p => Assert.Equal(0f, p));
                }
        });

        var missing = await http.GetAsync(new Uri(cluster.WebAddress(0), $"api/traces/{new string('0', 31)}1"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task The_dashboards_polling_makes_no_spans()
    {
        using var http = new HttpClient();
        await http.GetStringAsync(new Uri(cluster.WebAddress(0), "api/cluster"));
        int before = cluster.Spans.Count;
        for (int silo = 0; silo < ThreeSiloCluster.SiloCount; silo++)
        {
            await http.GetStringAsync(new Uri(cluster.WebAddress(silo), "api/cluster"));
            await http.GetStringAsync(new Uri(cluster.WebAddress(silo), "api/traces"));
            await http.GetStringAsync(new Uri(cluster.WebAddress(silo), "metrics"));
            await http.GetStringAsync(new Uri(cluster.WebAddress(silo), ""));
        }
        await Task.Delay(200);
        // Other work may trace meanwhile (a layer re-balancing its heads); nothing may come from the dashboard's calls.
        var made = cluster.Spans.Snapshot().Skip(before)
            .Where(s => s.DisplayName.Contains("ISiloTelemetryGrain") || s.DisplayName.Contains("IModelCatalogGrain")
                || s.DisplayName.Contains("IManagementGrain") || s.Source.Name == "Microsoft.AspNetCore")
            .Select(s => $"{s.Source.Name}: {s.DisplayName}")
            .ToList();
        Assert.True(made.Count == 0, "the dashboard made spans: " + string.Join("; ", made.Take(10)));
    }
}
