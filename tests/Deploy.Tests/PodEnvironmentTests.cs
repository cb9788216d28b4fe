using System.Text.Json.Nodes;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.DeployTests;

/// <summary>
/// Silo processes started with exactly the environment the Deployment gives its pods (filled in for loopback,
/// see <see cref="PodEnvironment"/>) against a local redis-server: they join one cluster through Redis, keep the
/// weights in Redis, serve forwards, and leave gracefully on SIGTERM. Needs redis-server (Debian package
/// redis-server); without it these tests fail rather than skip.
/// </summary>
public sealed class PodEnvironmentTests
{
    private const int Tokens = 16;
    private const int ModelDim = 768;
    private const int DemoGroups = 12;

    [Fact]
    public async Task Two_pods_join_one_cluster_through_Redis_and_serve_the_demo_model_and_an_uploaded_one()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var first = await StartPodAsync("headwise-silo-test-0", redis);
        await using var second = await StartPodAsync("headwise-silo-test-1", redis);

        // Both are Active members of the cluster named by the pod labels, in Redis.
        var members = Members(redis);
        Assert.True(members.Count(m => m.Status == Active) == 2,
            $"expected 2 active silos in Redis, found: {string.Join("; ", members)}\n{first.Output}\n{second.Output}");
        Assert.Contains(members, m => m.Address.StartsWith($"{PodEnvironment.PodIp}:{first.SiloPort}@", StringComparison.Ordinal));
        Assert.Contains(members, m => m.Address.StartsWith($"{PodEnvironment.PodIp}:{second.SiloPort}@", StringComparison.Ordinal));
        // Grain state (the demo model's spec and weights) is in Redis too, beside the membership table.
        Assert.Contains(redis.Cli("KEYS", "*"), key => key != MembershipKey);

        var input = SeededInput(seed: 7);
        await using var viaSecond = new GrpcAttentionClient(second.GrpcAddress);
        await using var viaFirst = new GrpcAttentionClient(first.GrpcAddress);
        var fromSecond = await ForwardDemoAsync(viaSecond, input);
        var fromFirst = await ForwardDemoAsync(viaFirst, input);
        Tolerance.AssertClose(fromFirst.Output.Data.Span, fromSecond.Output.Data.Span, "demo forward through either pod's gateway");

        // What the pod annotations tell Prometheus to scrape: /metrics on the web port.
        var annotations = Manifests.Map(Manifests.Base.Single("Deployment", "headwise-silo"), "spec.template.metadata.annotations");
        using var http = new HttpClient();
        var scrape = await http.GetAsync(new Uri(second.WebAddress, annotations["prometheus.io/path"]));
        Assert.True(scrape.IsSuccessStatusCode, $"GET {annotations["prometheus.io/path"]} on the web port answered {(int)scrape.StatusCode}");
        // What the kubelet asks: every probe path of the silo container answers 200 on a ready pod.
        var container = Manifests.Containers(Manifests.Base.Single("Deployment", "headwise-silo")).Single();
        foreach (var probe in new[] { "startupProbe", "readinessProbe", "livenessProbe" })
        {
            string path = Manifests.Str(container, $"{probe}.httpGet.path")!;
            var answer = await http.GetAsync(new Uri(first.WebAddress, path));
            Assert.True(answer.IsSuccessStatusCode, $"the {probe} path {path} answered {(int)answer.StatusCode} on a ready pod");
        }

        // A model created once both are up spreads its heads over both pods, and its answers are the golden ones.
        var golden = GoldenCase.Load("gpt2-small-shape");
        await viaSecond.CreateModelAsync("deploy-golden", golden.Spec);
        await viaSecond.UploadWeightsAsync("deploy-golden", new MemoryStream(golden.Bytes), golden.Layout, golden.Prefix);
        var output = await viaFirst.ForwardAsync("deploy-golden", new AttentionInput
        {
            Input = new FloatTensor(golden.Input, golden.Batch, golden.Tokens, golden.Spec.ModelDim),
            Causal = true,
        });
        Tolerance.AssertClose(golden.Expected("expected.0.causal"), output.Output.Data.Span, "golden case through pods with the Deployment's environment");
        Assert.Equal(
            new HashSet<string> { $"{PodEnvironment.PodIp}:{first.SiloPort}", $"{PodEnvironment.PodIp}:{second.SiloPort}" },
            output.Heads.Select(h => h.Silo).ToHashSet());
    }

    [Fact]
    public async Task A_pod_sent_SIGTERM_leaves_the_cluster_in_time_and_the_other_serves_its_heads_from_Redis()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var first = await StartPodAsync("headwise-silo-test-0", redis);
        await using var second = await StartPodAsync("headwise-silo-test-1", redis);

        var input = SeededInput(seed: 11);
        await using var viaFirst = new GrpcAttentionClient(first.GrpcAddress);
        var before = await ForwardDemoAsync(viaFirst, input);

        // The kubelet's SIGTERM: the silo must be gone within the host's shutdown timeout the Deployment sets
        // (itself inside terminationGracePeriodSeconds), with exit code 0.
        var shutdownSeconds = int.Parse(second.Environment.GetValueOrDefault("DOTNET_SHUTDOWNTIMEOUTSECONDS", "30"));
        var exitCode = await second.TerminateAsync(TimeSpan.FromSeconds(shutdownSeconds + 5));
        Assert.True(exitCode == 0, $"the pod's silo should exit 0 on SIGTERM within {shutdownSeconds} s, got {exitCode?.ToString() ?? "no exit"}:\n{second.Output}");
        var leaving = Members(redis).Single(m => m.Address.StartsWith($"{PodEnvironment.PodIp}:{second.SiloPort}@", StringComparison.Ordinal));
        Assert.Equal(Dead, leaving.Status);

        // Every head now runs on the first pod; the second pod's heads came back with their weights from Redis.
        var after = await ForwardDemoAsync(viaFirst, input);
        Assert.All(after.Heads, h => Assert.Equal($"{PodEnvironment.PodIp}:{first.SiloPort}", h.Silo));
        Tolerance.AssertClose(before.Output.Data.Span, after.Output.Data.Span, "demo forward after a pod left");
    }

    // ---- helpers ----

    private const int Active = 3; // Orleans SiloStatus.Active
    private const int Dead = 6;   // Orleans SiloStatus.Dead

    /// <summary>Orleans' Redis membership table: one hash per cluster, "{serviceId}/members/{clusterId}".</summary>
    private static string MembershipKey =>
        $"{PodEnvironment.Labels["orleans/serviceId"]}/members/{PodEnvironment.Labels["orleans/clusterId"]}";

    private sealed record Member(string Address, int Status, string Name);

    private static List<Member> Members(RedisServer redis)
    {
        var lines = redis.Cli("HGETALL", MembershipKey);
        var members = new List<Member>();
        for (var i = 0; i + 1 < lines.Length; i += 2)
        {
            if (lines[i] == "Version") continue;
            var entry = JsonNode.Parse(lines[i + 1])!;
            members.Add(new Member(
                entry["SiloAddress"]?["SiloAddress"]?.GetValue<string>() ?? lines[i],
                entry["Status"]!.GetValue<int>(),
                entry["SiloName"]?.GetValue<string>() ?? ""));
        }
        return members;
    }

    private static async Task<PodProcess> StartPodAsync(string name, RedisServer redis)
    {
        var environment = PodEnvironment.ForLoopback(name, redis, out var substituted);
        var pod = PodProcess.Start(name, environment);
        try
        {
            await pod.WaitUntilHealthyAsync(TimeSpan.FromSeconds(120));
        }
        catch (Exception e)
        {
            await pod.DisposeAsync();
            throw new InvalidOperationException(
                $"{name} did not become healthy with the Deployment's environment (loopback substitutions:\n{substituted}): {e.Message}", e);
        }
        return pod;
    }

    private static float[] SeededInput(int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, Tokens * ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    private static async Task<AttentionOutput> ForwardDemoAsync(IAttentionClient client, float[] input)
    {
        var result = await client.ForwardAsync("demo", new AttentionInput
        {
            Input = new FloatTensor(input, 1, Tokens, ModelDim),
            Causal = true,
        });
        Assert.Equal([1, Tokens, ModelDim], result.Output.Shape);
        var values = result.Output.Data.ToArray();
        Assert.All(values, v => Assert.True(float.IsFinite(v), "every output value is finite"));
        Assert.Contains(values, v => v != 0f);
        Assert.Equal(Enumerable.Range(0, DemoGroups), result.Heads.Select(h => h.Group).Order());
        return result;
    }
}
