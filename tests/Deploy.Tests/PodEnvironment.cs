using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Headwise.TestSupport;
using static Headwise.DeployTests.Manifests;

namespace Headwise.DeployTests;

/// <summary>
/// The environment the rendered silo Deployment gives a pod, resolved the way the kubelet resolves it (downward
/// API fields, $(VAR) references), then filled in for loopback: the pod IP is 127.0.0.1, the Redis and Jaeger
/// Service names point at a local redis-server and at a port nothing listens on, and the four ports are free
/// ones (11111 and friends may be taken on a test machine). Every other variable is passed as the Deployment has it.
/// </summary>
public static partial class PodEnvironment
{
    public const string PodIp = "127.0.0.1";

    /// <summary>The silo Deployment's pod template labels, as the downward API would read them.</summary>
    public static IReadOnlyDictionary<string, string> Labels => Map(Deployment, "spec.template.metadata.labels");

    private static JsonObject Deployment => Manifests.Base.Single("Deployment", "headwise-silo");

    /// <summary>The variables as a pod named <paramref name="podName"/> sees them, before any loopback substitution.</summary>
    public static Dictionary<string, string> AsInPod(string podName)
    {
        var container = Containers(Deployment).Single();
        var @namespace = Str(Deployment, "metadata.namespace")!;
        var labels = Labels;
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in Arr(container, "env").Cast<JsonObject>())
        {
            var name = Str(entry, "name")!;
            if (Str(entry, "value") is { } value)
            {
                environment[name] = Expand(value, environment);
                continue;
            }
            var field = Str(entry, "valueFrom.fieldRef.fieldPath")
                        ?? throw new InvalidOperationException($"env {name}: only literal values and fieldRef are understood by this test.");
            environment[name] = field switch
            {
                "metadata.name" => podName,
                "metadata.namespace" => @namespace,
                "status.podIP" => PodIp,
                _ when LabelField().Match(field) is { Success: true } m =>
                    labels.TryGetValue(m.Groups[1].Value, out var label)
                        ? label
                        : throw new InvalidOperationException($"env {name} reads label '{m.Groups[1].Value}', which the pod template lacks."),
                _ => throw new InvalidOperationException($"env {name}: fieldRef {field} is not one this test can fill in."),
            };
        }
        return environment;
    }

    /// <summary>
    /// <see cref="AsInPod"/> with the Service names and ports replaced for loopback; <paramref name="substituted"/>
    /// says what was replaced, for failure messages.
    /// </summary>
    public static Dictionary<string, string> ForLoopback(string podName, RedisServer redis, out string substituted)
    {
        var environment = AsInPod(podName);
        var notes = new StringBuilder();
        void Set(string name, string value)
        {
            notes.AppendLine($"  {name}: {environment.GetValueOrDefault(name) ?? "(unset)"} -> {value}");
            environment[name] = value;
        }

        // "redis:6379[,options]": the host:port must be the redis Service, as the pod resolves it.
        var redisSetting = environment["Headwise__Redis"];
        var comma = redisSetting.IndexOf(',');
        var endpoint = comma < 0 ? redisSetting : redisSetting[..comma];
        Assert.Equal("redis:6379", endpoint);
        Set("Headwise__Redis", redis.Endpoint + (comma < 0 ? "" : redisSetting[comma..]));

        if (environment.TryGetValue("OTEL_EXPORTER_OTLP_ENDPOINT", out var otlp))
        {
            var uri = new Uri(otlp);
            Manifests.Base.Single("Service", uri.Host);
            // Nothing listens there: exports fail quietly, as they would with Jaeger down.
            Set("OTEL_EXPORTER_OTLP_ENDPOINT", $"{uri.Scheme}://127.0.0.1:{FreePorts.Take(1)[0]}");
        }

        var ports = FreePorts.Take(4);
        Set("Headwise__SiloPort", ports[0].ToString());
        Set("Headwise__GatewayPort", ports[1].ToString());
        Set("Headwise__GrpcPort", ports[2].ToString());
        Set("Headwise__WebPort", ports[3].ToString());
        substituted = notes.ToString();
        return environment;
    }

    /// <summary>Kubernetes' $(VAR) expansion: a reference to a variable defined earlier is replaced, $$ is a literal $.</summary>
    public static string Expand(string value, IReadOnlyDictionary<string, string> defined) =>
        Reference().Replace(value, m => m.Value == "$$" ? "$"
            : defined.TryGetValue(m.Groups[1].Value, out var v) ? v : m.Value);

    [GeneratedRegex(@"^metadata\.labels\['([^']+)'\]$")]
    private static partial Regex LabelField();

    [GeneratedRegex(@"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")]
    private static partial Regex Reference();
}
