using System.Text.Json.Nodes;
using static Headwise.DeployTests.Manifests;

namespace Headwise.DeployTests;

/// <summary>
/// What deploy/k8s closes: NetworkPolicies let only silo pods reach the Orleans ports and Redis and leave gRPC and the
/// web port open; deploy/overlays/secured feeds the API key and the Orleans TLS certificate from Secrets it does not hold.
/// </summary>
public sealed class ClosedByDefaultManifestTests
{
    public const string SecuredOverlay = "deploy/overlays/secured";
    private static Manifests M => Manifests.Base;
    private static JsonObject Silo => M.Single("Deployment", "headwise-silo");
    private static IReadOnlyDictionary<string, string> SiloPodLabels => Map(Silo, "spec.template.metadata.labels");

    [Fact]
    public void Only_silo_pods_reach_the_Orleans_ports_and_everyone_reaches_only_gRPC_and_the_web_port()
    {
        var policy = PolicySelecting(Silo);
        var container = Containers(Silo).Single();
        var rules = Arr(policy, "spec.ingress").Cast<JsonObject>().ToList();
        Assert.NotEmpty(rules);

        var open = new HashSet<int>();
        foreach (var rule in rules)
        {
            var ports = Ports(rule, container);
            var peers = Arr(rule, "from").Cast<JsonObject>().ToList();
            if (peers.Count == 0)
            {
                Assert.True(ports.Count > 0, "an ingress rule from anyone without ports opens every port to everyone");
                open.UnionWith(ports);
                continue;
            }
            // Each peer picks silo pods of this namespace: a pod selector matching the silo's labels, no namespace
            // selector (which would widen it to other namespaces) and no address block. Silos may reach each other on
            // any port (the tensor channel's is free unless Headwise__TensorPort is set).
            Assert.All(peers, peer =>
            {
                Assert.Null(At(peer, "namespaceSelector"));
                Assert.Null(At(peer, "ipBlock"));
                var selector = Map(peer, "podSelector.matchLabels");
                Assert.NotEmpty(selector);
                Assert.All(selector, kv => Assert.Equal(kv.Value, SiloPodLabels.GetValueOrDefault(kv.Key)));
            });
        }
        Assert.Equal(new HashSet<int> { 5070, 5080 }, open);
        Assert.DoesNotContain(11111, open);
        Assert.DoesNotContain(30000, open);
    }

    [Fact]
    public void Only_silo_pods_reach_Redis()
    {
        var redis = M.WorkloadRunning("redis");
        var policy = PolicySelecting(redis);
        var rule = Arr(policy, "spec.ingress").Cast<JsonObject>().Single();
        Assert.Equal([6379], Ports(rule, Containers(redis).Single()));
        var peer = Arr(rule, "from").Cast<JsonObject>().Single();
        Assert.Null(At(peer, "namespaceSelector"));
        Assert.Null(At(peer, "ipBlock"));
        Assert.All(Map(peer, "podSelector.matchLabels"), kv => Assert.Equal(kv.Value, SiloPodLabels.GetValueOrDefault(kv.Key)));
        Assert.NotEmpty(Map(peer, "podSelector.matchLabels"));
    }

    [Fact]
    public void The_secured_overlay_reads_the_API_key_and_the_Orleans_TLS_certificate_from_Secrets_it_does_not_hold()
    {
        var overlay = Manifests.Render(SecuredOverlay);
        var silo = overlay.Single("Deployment", "headwise-silo");
        var container = Containers(silo).Single();
        var env = Arr(container, "env").Cast<JsonObject>().ToDictionary(e => Str(e, "name")!, e => e);

        Assert.Equal("headwise-api-key", Str(env["Headwise__ApiKey"], "valueFrom.secretKeyRef.name"));
        Assert.Equal("api-key", Str(env["Headwise__ApiKey"], "valueFrom.secretKeyRef.key"));
        Assert.Null(Str(env["Headwise__ApiKey"], "value"));
        Assert.Equal("true", Str(env["Headwise__RequireKeyForForward"], "value"));

        // The certificate and key paths lie in a read-only mount of the TLS Secret.
        var volume = Arr(silo, "spec.template.spec.volumes").Cast<JsonObject>().Single(v => Str(v, "secret.secretName") == "headwise-orleans-tls");
        var mount = Arr(container, "volumeMounts").Cast<JsonObject>().Single(m => Str(m, "name") == Str(volume, "name"));
        Assert.Equal("true", Str(mount, "readOnly"));
        string mountPath = Str(mount, "mountPath")!.TrimEnd('/') + "/";
        Assert.Equal(mountPath + "tls.crt", Str(env["Headwise__OrleansTls__CertificatePath"], "value"));
        Assert.Equal(mountPath + "tls.key", Str(env["Headwise__OrleansTls__KeyPath"], "value"));
        // 0440: the pod's fsGroup (the silo's user) reads it, others do not.
        Assert.Equal(Convert.ToInt32("440", 8), int.Parse(Str(volume, "secret.defaultMode")!));

        Assert.Empty(overlay.OfKind("Secret"));
        Assert.Equal(M.Objects.Count, overlay.Objects.Count);
        Assert.Equal(2, overlay.OfKind("NetworkPolicy").Count());

        // The base itself has neither: it stays the open, keyless starting point.
        var baseEnv = Arr(Containers(Silo).Single(), "env").Cast<JsonObject>().Select(e => Str(e, "name")).ToList();
        Assert.DoesNotContain("Headwise__ApiKey", baseEnv);
        Assert.DoesNotContain(baseEnv, name => name!.StartsWith("Headwise__OrleansTls__", StringComparison.Ordinal));
    }

    /// <summary>The one NetworkPolicy whose pod selector picks the pods of <paramref name="workload"/>.</summary>
    private static JsonObject PolicySelecting(JsonObject workload)
    {
        var podLabels = Map(workload, "spec.template.metadata.labels");
        var policies = M.OfKind("NetworkPolicy").Where(p =>
        {
            var selector = Map(p, "spec.podSelector.matchLabels");
            return selector.Count > 0 && selector.All(kv => podLabels.GetValueOrDefault(kv.Key) == kv.Value);
        }).ToList();
        Assert.True(policies.Count == 1, $"expected one NetworkPolicy selecting {Str(workload, "metadata.name")}'s pods, found {policies.Count}.");
        Assert.Contains("Ingress", Arr(policies[0], "spec.policyTypes").Select(t => t!.GetValue<string>()));
        return policies[0];
    }

    /// <summary>The container port numbers a NetworkPolicy rule opens (numbers or container port names), all TCP.</summary>
    private static List<int> Ports(JsonObject rule, JsonObject container) =>
        Arr(rule, "ports").Cast<JsonObject>().Select(p =>
        {
            Assert.Equal("TCP", Str(p, "protocol") ?? "TCP");
            Assert.Null(At(p, "endPort"));
            return ResolvePort(container, Str(p, "port")!);
        }).ToList();
}
