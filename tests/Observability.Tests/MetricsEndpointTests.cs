using Headwise.Client;
using Headwise.Contracts;

namespace Headwise.Observability.Tests;

/// <summary>
/// GET /metrics on the web port is Prometheus text, named per the OpenTelemetry conventions: durations are histograms in
/// seconds (headwise.forward.duration → headwise_forward_duration_seconds), attributes are namespaced (headwise.model →
/// headwise_model), and the per-head histogram is labelled by group and silo.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class MetricsEndpointTests(ThreeSiloCluster cluster)
{
    private static readonly AttentionSpec Spec = new() { ModelDim = 64, HeadCount = 4, Bias = true };

    [Fact]
    public async Task Metrics_parse_as_prometheus_text_and_hold_the_head_histogram_by_group_and_silo()
    {
        await cluster.CreateModel("metrics", Spec);
        for (int i = 0; i < 3; i++) await cluster.Forward("metrics", Spec.ModelDim, tokens: 8, silo: i);

        using (var http = new HttpClient())
        {
            var response = await http.GetAsync(new Uri(cluster.WebAddress(0), "metrics"));
            response.EnsureSuccessStatusCode();
            Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        }
        var (types, samples) = await ScrapeUntil(s => s.Count(x => x.Name == "headwise_head_compute_duration_seconds_count" && x.Labels.GetValueOrDefault("headwise_model") == "metrics"
            && x.Value == 3) == Spec.HeadCount);

        Assert.Equal("histogram", types["headwise_head_compute_duration_seconds"]);
        var heads = samples.Where(s => s.Name == "headwise_head_compute_duration_seconds_count" && s.Labels.GetValueOrDefault("headwise_model") == "metrics").ToList();
        // One series per head group (each ran three times), each naming its group, silo, layer and kernel.
        Assert.Equal(Enumerable.Range(0, Spec.HeadCount).Select(g => g.ToString()).ToHashSet(), heads.Select(h => h.Labels["headwise_group"]).ToHashSet());
        Assert.All(heads, h =>
        {
            Assert.Equal(3, h.Value);
            Assert.Equal("0", h.Labels["headwise_layer"]);
            Assert.Equal("simd", h.Labels["headwise_kernel"]);
            Assert.Matches(@"^127\.0\.0\.1:\d+$", h.Labels["headwise_silo"]);
        });
        Assert.True(heads.Select(h => h.Labels["headwise_silo"]).Distinct().Count() >= 2, "the head histogram names fewer than two silos");

        // The rest of the meter: forward latency, tokens, throughput, bytes between silos, passes under way.
        Assert.Equal("histogram", types["headwise_forward_duration_seconds"]);
        Assert.Equal(3, samples.Single(s => s.Name == "headwise_forward_duration_seconds_count" && s.Labels.GetValueOrDefault("headwise_model") == "metrics").Value);
        Assert.Equal(3 * 8, samples.Single(s => s.Name == "headwise_forward_tokens_total" && s.Labels.GetValueOrDefault("headwise_model") == "metrics").Value);
        Assert.Contains(samples, s => s.Name == "headwise_forward_throughput_per_second_count" && s.Labels.GetValueOrDefault("headwise_model") == "metrics");
        Assert.Contains(samples, s => s.Name == "headwise_scatter_bytes_total" && s.Labels.GetValueOrDefault("headwise_model") == "metrics" && s.Value > 0);
        Assert.Contains(samples, s => s.Name == "headwise_gather_bytes_total" && s.Labels.GetValueOrDefault("headwise_model") == "metrics" && s.Value > 0);
        Assert.Equal(0, samples.Single(s => s.Name == "headwise_forward_active" && s.Labels.GetValueOrDefault("headwise_model") == "metrics").Value);
        // Seconds, not milliseconds: three passes of 8 tokens on a 64-wide layer take well under a second each.
        double seconds = samples.Single(s => s.Name == "headwise_forward_duration_seconds_sum" && s.Labels.GetValueOrDefault("headwise_model") == "metrics").Value;
        Assert.InRange(seconds, 1e-6, 3 * 1.0);
        Assert.DoesNotContain(samples, s => s.Labels.ContainsKey("model") || s.Labels.ContainsKey("error_code"));

        // Each 8-token forward could join a batch, and each found its coordinator's lane free: three batches of one.
        (types, samples) = await ScrapeUntil(s => s.Where(x => x.Name == "headwise_forward_batch_size_count"
            && x.Labels.GetValueOrDefault("headwise_model") == "metrics").Sum(x => x.Value) == 3);
        Assert.Equal("histogram", types["headwise_forward_batch_size"]);
        Assert.Equal("histogram", types["headwise_forward_batch_delay_seconds"]);
        double Total(string name) => samples.Where(s => s.Name == name && s.Labels.GetValueOrDefault("headwise_model") == "metrics").Sum(s => s.Value);
        Assert.Equal(3, Total("headwise_forward_batch_size_count"));
        Assert.Equal(3, Total("headwise_forward_batch_size_sum"));
        Assert.Equal(3, Total("headwise_forward_batch_delay_seconds_count"));
    }

    [Fact]
    public async Task A_failed_forward_is_measured_with_error_type()
    {
        await cluster.CreateModel("metrics-failing", Spec);
        await cluster.Forward("metrics-failing", Spec.ModelDim, tokens: 4);
        // Head 0 forgets its weights: the layer is still ready, so the pass starts and then fails in the head.
        await cluster.Grains.GetGrain<IHeadGrain>(GrainKeys.Head("metrics-failing", 0, 0)).Clear();
        await Assert.ThrowsAsync<HeadwiseException>(() => cluster.Forward("metrics-failing", Spec.ModelDim, tokens: 4));

        var (_, samples) = await ScrapeUntil(s => s.Any(x => x.Name == "headwise_forward_duration_seconds_count"
            && x.Labels.GetValueOrDefault("headwise_model") == "metrics-failing" && x.Labels.ContainsKey("error_type")));
        var failed = samples.Single(s => s.Name == "headwise_forward_duration_seconds_count"
            && s.Labels.GetValueOrDefault("headwise_model") == "metrics-failing" && s.Labels.ContainsKey("error_type"));
        Assert.Equal("FailedPrecondition", failed.Labels["error_type"]);
        Assert.Equal(1, failed.Value);
        Assert.Equal(1, samples.Single(s => s.Name == "headwise_forward_duration_seconds_count"
            && s.Labels.GetValueOrDefault("headwise_model") == "metrics-failing" && !s.Labels.ContainsKey("error_type")).Value);
    }

    [Fact]
    public async Task Decode_steps_open_sessions_and_cache_bytes_are_measured()
    {
        const string model = "decode-metrics";
        await cluster.CreateModel(model, Spec);
        await using var client = new GrpcAttentionClient(cluster.GrpcAddress(0));
        var session = await client.OpenSessionAsync(model, 0, maxTokens: 16);
        var random = new Random(3);
        for (int step = 0; step < 3; step++)
        {
            var x = Enumerable.Range(0, 2 * Spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            await client.DecodeAsync(session.Id, new FloatTensor(x, 1, 2, Spec.ModelDim));
        }

        var (types, samples) = await ScrapeUntil(s => s.Any(x => x.Name == "headwise_decode_duration_seconds_count"
            && x.Labels.GetValueOrDefault("headwise_model") == model && x.Value == 3));
        Assert.Equal("histogram", types["headwise_decode_duration_seconds"]);
        Assert.Equal(3, samples.Single(s => s.Name == "headwise_decode_duration_seconds_count" && s.Labels.GetValueOrDefault("headwise_model") == model).Value);
        Assert.Equal(3 * 2, samples.Single(s => s.Name == "headwise_decode_tokens_total" && s.Labels.GetValueOrDefault("headwise_model") == model).Value);
        Assert.Equal(1, samples.Single(s => s.Name == "headwise_decode_sessions" && s.Labels.GetValueOrDefault("headwise_model") == model).Value);
        // The session's heads hold 6 tokens of K and V on the silos they live on.
        var cacheBytes = samples.Where(s => s.Name == "headwise_decode_cache_bytes").ToList();
        Assert.All(cacheBytes, s => Assert.Matches(@"^127\.0\.0\.1:\d+$", s.Labels["headwise_silo"]));
        Assert.True(cacheBytes.Sum(s => s.Value) >= Spec.HeadCount * 2 * 6 * (Spec.ModelDim / Spec.HeadCount) * sizeof(float));
        Assert.Contains(samples, s => s.Name == "headwise_decode_cache_evictions_total");
        // Each silo holding some of the session's heads computed each step in one pass (the session's steps follow one
        // another, so every pass here held one step), and measured how long the step waited for it.
        (types, samples) = await ScrapeUntil(s => s.Count(x => x.Name == "headwise_decode_batch_size_count" && x.Labels.GetValueOrDefault("headwise_model") == model) >= 2);
        Assert.Equal("histogram", types["headwise_decode_batch_size"]);
        Assert.Equal("histogram", types["headwise_decode_batch_delay_seconds"]);
        var passes = samples.Where(s => s.Name == "headwise_decode_batch_size_count" && s.Labels.GetValueOrDefault("headwise_model") == model).ToList();
        Assert.True(passes.Count >= 2, "fewer than two silos measured the session's decode passes");
        Assert.All(passes, s => Assert.Equal(3, s.Value));
        Assert.All(samples.Where(s => s.Name == "headwise_decode_batch_size_sum" && s.Labels.GetValueOrDefault("headwise_model") == model),
            s => Assert.Equal(3, s.Value));
        Assert.All(samples.Where(s => s.Name == "headwise_decode_batch_delay_seconds_count" && s.Labels.GetValueOrDefault("headwise_model") == model),
            s => Assert.Equal(3, s.Value));

        await client.CloseSessionAsync(session.Id);
        (_, samples) = await ScrapeUntil(s => s.Any(x => x.Name == "headwise_decode_sessions" && x.Labels.GetValueOrDefault("headwise_model") == model && x.Value == 0));
        Assert.Equal(0, samples.Single(s => s.Name == "headwise_decode_sessions" && s.Labels.GetValueOrDefault("headwise_model") == model).Value);
    }

    /// <summary>
    /// Scrapes /metrics until <paramref name="ready"/> holds or 5 s pass, and returns the last scrape: the exporter
    /// answers from a short-lived cache, so a scrape right after another may not show the latest measurements yet.
    /// </summary>
    private async Task<(IReadOnlyDictionary<string, string> Types, IReadOnlyList<PrometheusSample> Samples)> ScrapeUntil(
        Func<IReadOnlyList<PrometheusSample>, bool> ready)
    {
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (true)
        {
            var response = await http.GetAsync(new Uri(cluster.WebAddress(0), "metrics"));
            response.EnsureSuccessStatusCode();
            var scraped = PrometheusText.Parse(await response.Content.ReadAsStringAsync());
            if (ready(scraped.Samples) || DateTime.UtcNow > deadline) return scraped;
            await Task.Delay(100);
        }
    }
}
