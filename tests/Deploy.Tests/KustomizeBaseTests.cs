using System.Text.Json.Nodes;
using static Headwise.DeployTests.Manifests;

namespace Headwise.DeployTests;

/// <summary>
/// deploy/k8s rendered offline with `kubectl kustomize`: everything a Headwise cluster on Kubernetes needs is there
/// and consistent (labels and selectors, env and ports, probes and ports, RBAC and the service account).
/// </summary>
public sealed class KustomizeBaseTests
{
    private const string Namespace = "headwise";
    private static Manifests M => Manifests.Base;
    private static JsonObject Silo => M.Single("Deployment", "headwise-silo");
    private static JsonObject SiloContainer => Containers(Silo).Single();

    private static Dictionary<string, JsonObject> SiloEnv =>
        Arr(SiloContainer, "env").Cast<JsonObject>().ToDictionary(e => Str(e, "name")!, e => e);

    private static string? Literal(string name) => SiloEnv.TryGetValue(name, out var e) ? Str(e, "value") : null;

    [Fact]
    public void Renders_a_namespace_and_puts_every_namespaced_object_in_it()
    {
        M.Single("Namespace", Namespace);
        var cluster = new HashSet<string> { "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition" };
        Assert.All(M.Objects.Where(o => !cluster.Contains(Str(o, "kind")!)),
            o => Assert.Equal(Namespace, Str(o, "metadata.namespace")));
        Assert.Empty(M.OfKind("ClusterRole"));
        Assert.Empty(M.OfKind("ClusterRoleBinding"));
    }

    [Fact]
    public void Service_account_role_and_binding_grant_only_what_Kubernetes_hosting_needs()
    {
        var account = M.Single("ServiceAccount", "headwise-silo");
        Assert.Equal("true", Str(account, "automountServiceAccountToken"));

        var role = M.Single("Role", "headwise-silo");
        var rules = Arr(role, "rules").Cast<JsonObject>().ToList();
        var podVerbs = rules.Where(r => Arr(r, "apiGroups").Any(g => g!.GetValue<string>() == "")
                                        && Arr(r, "resources").Any(x => x!.GetValue<string>() == "pods"))
            .SelectMany(r => Arr(r, "verbs").Select(v => v!.GetValue<string>())).ToHashSet();
        Assert.Equal(new HashSet<string> { "get", "watch", "list" }, podVerbs);
        Assert.Equal(rules.Count, rules.Count(r => Arr(r, "resources").All(x => x!.GetValue<string>() == "pods")));

        var binding = M.Single("RoleBinding", "headwise-silo");
        Assert.Equal("Role", Str(binding, "roleRef.kind"));
        Assert.Equal("headwise-silo", Str(binding, "roleRef.name"));
        var subject = Arr(binding, "subjects").Cast<JsonObject>().Single();
        Assert.Equal("ServiceAccount", Str(subject, "kind"));
        Assert.Equal("headwise-silo", Str(subject, "name"));
        Assert.Equal(Namespace, Str(subject, "namespace"));

        Assert.Equal("headwise-silo", Str(Silo, "spec.template.spec.serviceAccountName"));
        Assert.Equal("true", Str(Silo, "spec.template.spec.automountServiceAccountToken"));
    }

    [Fact]
    public void Defunct_pod_deletion_is_an_overlay_that_adds_delete_and_patch_and_turns_the_option_on()
    {
        var overlay = Manifests.Render(DefunctPodOverlay);
        var verbs = Arr(overlay.Single("Role", "headwise-silo"), "rules")
            .SelectMany(r => Arr(r, "verbs").Select(v => v!.GetValue<string>())).ToHashSet();
        Assert.Superset(new HashSet<string> { "get", "watch", "list", "delete", "patch" }, verbs);

        var env = Arr(Containers(overlay.Single("Deployment", "headwise-silo")).Single(), "env").Cast<JsonObject>();
        Assert.Contains(env, e => Str(e, "name") == "Headwise__DeleteDefunctSiloPods" && Str(e, "value") == "true");
        Assert.DoesNotContain(SiloEnv.Keys, k => k == "Headwise__DeleteDefunctSiloPods");
    }

    [Fact]
    public void Silo_deployment_runs_three_labelled_replicas_of_the_silo_image()
    {
        Assert.Equal("3", Str(Silo, "spec.replicas"));
        var labels = Map(Silo, "spec.template.metadata.labels");
        Assert.False(string.IsNullOrEmpty(labels.GetValueOrDefault("orleans/serviceId")), "pod label orleans/serviceId");
        Assert.False(string.IsNullOrEmpty(labels.GetValueOrDefault("orleans/clusterId")), "pod label orleans/clusterId");
        Assert.All(Map(Silo, "spec.selector.matchLabels"), kv => Assert.Equal(kv.Value, labels.GetValueOrDefault(kv.Key)));

        Assert.Equal("headwise-silo:latest", Str(SiloContainer, "image"));
        Assert.Equal("IfNotPresent", Str(SiloContainer, "imagePullPolicy"));
    }

    [Fact]
    public void Silo_pods_get_the_downward_API_values_and_cluster_ids_from_their_own_labels()
    {
        Assert.Equal("metadata.name", Str(SiloEnv["POD_NAME"], "valueFrom.fieldRef.fieldPath"));
        Assert.Equal("metadata.namespace", Str(SiloEnv["POD_NAMESPACE"], "valueFrom.fieldRef.fieldPath"));
        Assert.Equal("status.podIP", Str(SiloEnv["POD_IP"], "valueFrom.fieldRef.fieldPath"));
        // Kubernetes hosting patches its pod when ORLEANS_*_ID and the labels differ (a verb the base does not grant):
        // reading the ids from the labels makes them equal by construction.
        Assert.Equal("metadata.labels['orleans/serviceId']", Str(SiloEnv["ORLEANS_SERVICE_ID"], "valueFrom.fieldRef.fieldPath"));
        Assert.Equal("metadata.labels['orleans/clusterId']", Str(SiloEnv["ORLEANS_CLUSTER_ID"], "valueFrom.fieldRef.fieldPath"));
        Assert.DoesNotContain("Headwise__ClusterId", SiloEnv.Keys);
        Assert.DoesNotContain("Headwise__ServiceId", SiloEnv.Keys);
    }

    [Fact]
    public void Silo_pods_run_in_cluster_mode_against_the_Redis_and_Jaeger_services()
    {
        Assert.Equal("Redis", Literal("Headwise__Clustering"));
        Assert.Equal("Redis", Literal("Headwise__Storage"));
        Assert.Equal("0.0.0.0", Literal("Headwise__ListenAddress"));
        Assert.True(bool.TryParse(Literal("Headwise__DemoModel"), out _), "Headwise__DemoModel must be true or false");
        Assert.DoesNotContain("Headwise__AdvertisedAddress", SiloEnv.Keys); // POD_IP is the advertised address

        var (redisHost, redisPort) = HostPort(Literal("Headwise__Redis")!.Split(',')[0]);
        AssertServiceReaches(redisHost, redisPort, M.WorkloadRunning("redis"));

        Assert.Equal("http://jaeger:4317", Literal("OTEL_EXPORTER_OTLP_ENDPOINT"));
        var otlp = new Uri(Literal("OTEL_EXPORTER_OTLP_ENDPOINT")!);
        AssertServiceReaches(otlp.Host, otlp.Port, M.WorkloadRunning("jaegertracing/all-in-one"));
    }

    [Fact]
    public void Silo_ports_are_declared_named_and_the_ones_the_silo_is_told_to_use()
    {
        var ports = Arr(SiloContainer, "ports").Cast<JsonObject>()
            .ToDictionary(p => Str(p, "name")!, p => int.Parse(Str(p, "containerPort")!));
        Assert.Equal(new Dictionary<string, int> { ["silo"] = 11111, ["gateway"] = 30000, ["grpc"] = 5070, ["web"] = 5080 }, ports);
        Assert.Equal("11111", Literal("Headwise__SiloPort") ?? "11111");
        Assert.Equal("30000", Literal("Headwise__GatewayPort") ?? "30000");
        Assert.Equal("5070", Literal("Headwise__GrpcPort") ?? "5070");
        Assert.Equal("5080", Literal("Headwise__WebPort") ?? "5080");
    }

    [Theory]
    [InlineData("startupProbe", "/healthz/startup")]
    [InlineData("readinessProbe", "/healthz/ready")]
    [InlineData("livenessProbe", "/healthz/live")]
    public void Each_probe_asks_its_own_question_on_the_web_port(string probe, string path)
    {
        // Startup gates liveness (a silo loading the demo model is not killed); liveness asks only whether the process
        // answers (a cluster problem takes the pod out of rotation, it does not restart it).
        Assert.True(At(SiloContainer, probe) is JsonObject, $"the silo container has no {probe}");
        Assert.Equal(path, Str(SiloContainer, $"{probe}.httpGet.path"));
        Assert.Equal(5080, ResolvePort(SiloContainer, Str(SiloContainer, $"{probe}.httpGet.port")!));
    }

    [Fact]
    public void The_startup_probe_gives_a_slow_start_minutes_before_liveness_takes_over()
    {
        int Seconds(string probe, string field) => int.Parse(Str(SiloContainer, $"{probe}.{field}")!);
        Assert.True(Seconds("startupProbe", "periodSeconds") * Seconds("startupProbe", "failureThreshold") >= 120,
            "the startup probe must allow at least two minutes (the demo model loads and the cluster forms first)");
    }

    [Fact]
    public void Shutdown_is_graceful_and_fits_in_the_grace_period()
    {
        var grace = int.Parse(Str(Silo, "spec.template.spec.terminationGracePeriodSeconds")!);
        var command = Arr(SiloContainer, "lifecycle.preStop.exec.command").Select(c => c!.GetValue<string>()).ToList();
        Assert.Equal("sleep", command.FirstOrDefault());
        var preStop = int.Parse(command[1]);
        Assert.InRange(preStop, 1, 30);
        var shutdown = int.Parse(Literal("DOTNET_SHUTDOWNTIMEOUTSECONDS") ?? "30"); // the .NET host's default is 30 s
        Assert.True(preStop + shutdown < grace,
            $"preStop {preStop} s + host shutdown {shutdown} s must fit in terminationGracePeriodSeconds {grace} s");
    }

    [Fact]
    public void Silo_containers_have_resources_and_run_as_non_root_on_a_read_only_root()
    {
        foreach (var path in new[] { "resources.requests.cpu", "resources.requests.memory", "resources.limits.cpu", "resources.limits.memory" })
            Assert.False(string.IsNullOrEmpty(Str(SiloContainer, path)), $"the silo container has no {path}");

        Assert.Equal("true", Str(Silo, "spec.template.spec.securityContext.runAsNonRoot"));
        Assert.NotEqual("0", Str(Silo, "spec.template.spec.securityContext.runAsUser"));
        Assert.Equal("true", Str(SiloContainer, "securityContext.readOnlyRootFilesystem"));
        Assert.Equal("false", Str(SiloContainer, "securityContext.allowPrivilegeEscalation"));
        Assert.Contains("ALL", Arr(SiloContainer, "securityContext.capabilities.drop").Select(c => c!.GetValue<string>()));
        // With a read-only root, /tmp (the .NET diagnostics sockets) must be a writable volume.
        Assert.Contains(Arr(SiloContainer, "volumeMounts").Cast<JsonObject>(), m => Str(m, "mountPath") == "/tmp");
    }

    [Fact]
    public void Silo_pods_carry_Prometheus_scrape_annotations_for_the_web_port()
    {
        var annotations = Map(Silo, "spec.template.metadata.annotations");
        Assert.Equal("true", annotations.GetValueOrDefault("prometheus.io/scrape"));
        Assert.Equal("5080", annotations.GetValueOrDefault("prometheus.io/port"));
        Assert.Equal("/metrics", annotations.GetValueOrDefault("prometheus.io/path"));
    }

    [Fact]
    public void A_disruption_budget_keeps_most_silos_up()
    {
        var budget = M.OfKind("PodDisruptionBudget").Single();
        var podLabels = Map(Silo, "spec.template.metadata.labels");
        var selector = Map(budget, "spec.selector.matchLabels");
        Assert.NotEmpty(selector);
        Assert.All(selector, kv => Assert.Equal(kv.Value, podLabels.GetValueOrDefault(kv.Key)));
        var maxUnavailable = Str(budget, "spec.maxUnavailable");
        var minAvailable = Str(budget, "spec.minAvailable");
        Assert.True(maxUnavailable == "1" || (minAvailable is not null && int.Parse(minAvailable) is >= 1 and < 3),
            $"expected maxUnavailable 1 or minAvailable 1..2, got maxUnavailable={maxUnavailable}, minAvailable={minAvailable}");
    }

    [Fact]
    public void Services_expose_gRPC_and_the_dashboard_of_the_silo_pods()
    {
        var services = M.ServicesSelecting(Silo).ToList();
        Assert.Contains(services, s => Exposes(s, 5070, SiloContainer, 5070));
        Assert.Contains(services, s => Exposes(s, 5080, SiloContainer, 5080));
        Assert.Equal("headwise-grpc", services.Single(s => Exposes(s, 5070, SiloContainer, 5070)).GetName());
        Assert.Equal("headwise-web", services.Single(s => Exposes(s, 5080, SiloContainer, 5080)).GetName());
    }

    [Fact]
    public void Redis_runs_a_pinned_alpine_image_behind_the_redis_service()
    {
        var redis = M.WorkloadRunning("redis");
        var container = Containers(redis).Single();
        Assert.Equal("redis:7-alpine", Str(container, "image"));
        AssertServiceReaches("redis", 6379, redis);
    }

    [Fact]
    public void Jaeger_all_in_one_has_OTLP_on_and_a_UI_service()
    {
        var jaeger = M.WorkloadRunning("jaegertracing/all-in-one");
        var container = Containers(jaeger).Single();
        var tag = ImageTag(Str(container, "image")!);
        Assert.False(tag is null or "latest", $"pin the Jaeger image to a version, not '{tag ?? "(no tag)"}'");
        var env = Arr(container, "env").Cast<JsonObject>().ToDictionary(e => Str(e, "name")!, e => Str(e, "value"));
        Assert.Equal("true", env.GetValueOrDefault("COLLECTOR_OTLP_ENABLED"));
        var ports = Arr(container, "ports").Select(p => int.Parse(Str(p, "containerPort")!)).ToHashSet();
        Assert.Superset(new HashSet<int> { 4317, 4318, 16686 }, ports);

        var services = M.ServicesSelecting(jaeger).ToList();
        Assert.Contains(services, s => Exposes(s, 4317, container, 4317));
        Assert.Contains(services, s => Exposes(s, 4318, container, 4318));
        Assert.Contains(services, s => Exposes(s, 16686, container, 16686));
    }

    [Fact]
    public void Every_container_has_resources_and_a_non_root_user_and_every_image_but_ours_is_pinned()
    {
        foreach (var workload in M.Objects.Where(o => Str(o, "kind") is "Deployment" or "StatefulSet" or "DaemonSet"))
        {
            var name = Str(workload, "metadata.name");
            Assert.Equal("true", Str(workload, "spec.template.spec.securityContext.runAsNonRoot"));
            foreach (var container in Containers(workload))
            {
                Assert.False(string.IsNullOrEmpty(Str(container, "resources.requests.memory")), $"{name}: memory request");
                Assert.False(string.IsNullOrEmpty(Str(container, "resources.limits.memory")), $"{name}: memory limit");
                var image = Str(container, "image")!;
                if (ImageRepository(image) != "headwise-silo")
                    Assert.False(ImageTag(image) is null or "latest", $"{name}: pin the image '{image}'");
            }
        }
    }

    private static bool Exposes(JsonObject service, int port, JsonObject container, int containerPort) =>
        Arr(service, "spec.ports").Cast<JsonObject>().Any(p =>
            Str(p, "port") == port.ToString() && ResolvePort(container, Str(p, "targetPort") ?? Str(p, "port")!) == containerPort);

    /// <summary>A Service named <paramref name="host"/> selects <paramref name="workload"/> and forwards <paramref name="port"/> to a port of it.</summary>
    private static void AssertServiceReaches(string host, int port, JsonObject workload)
    {
        var service = M.Single("Service", host);
        Assert.Contains(service, M.ServicesSelecting(workload));
        var container = Containers(workload).Single();
        var containerPorts = Arr(container, "ports").Select(p => int.Parse(Str(p, "containerPort")!)).ToHashSet();
        Assert.Contains(Arr(service, "spec.ports").Cast<JsonObject>(), p =>
            Str(p, "port") == port.ToString() && containerPorts.Contains(ResolvePort(container, Str(p, "targetPort") ?? Str(p, "port")!)));
    }

    private static (string Host, int Port) HostPort(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        return (endpoint[..colon], int.Parse(endpoint[(colon + 1)..]));
    }
}

internal static class JsonObjectNames
{
    public static string? GetName(this JsonObject o) => Manifests.Str(o, "metadata.name");
}
