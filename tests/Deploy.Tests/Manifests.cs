using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace Headwise.DeployTests;

/// <summary>
/// The objects `kubectl kustomize` renders from a kustomization directory, as JSON trees (scalars stay strings,
/// as YAML wrote them), with look-ups by kind and name.
/// </summary>
public sealed class Manifests
{
    public const string BaseDirectory = "deploy/k8s";
    public const string DefunctPodOverlay = "deploy/overlays/delete-defunct-pods";

    private static readonly Lazy<Manifests> s_base = new(() => Render(BaseDirectory));

    private Manifests(string directory, IReadOnlyList<JsonObject> objects)
    {
        Directory = directory;
        Objects = objects;
    }

    /// <summary>deploy/k8s, rendered once per test run.</summary>
    public static Manifests Base => s_base.Value;

    public string Directory { get; }
    public IReadOnlyList<JsonObject> Objects { get; }

    public static Manifests Render(string directory)
    {
        var (exit, stdout, stderr) = Repository.Run("kubectl", ["kustomize", directory],
            "kubectl (1.27 or later, for kustomize v5) renders the manifests offline; this machine kind has it preinstalled (apt package kubectl).");
        Assert.True(exit == 0, $"kubectl kustomize {directory} failed with exit code {exit}:\n{stderr}");
        return new Manifests(directory, Parse(stdout));
    }

    /// <summary>A multi-document YAML stream as JSON objects, one per document.</summary>
    public static IReadOnlyList<JsonObject> Parse(string yaml)
    {
        var deserializer = new DeserializerBuilder().Build();
        var parser = new Parser(new StringReader(yaml));
        parser.Consume<StreamStart>();
        var objects = new List<JsonObject>();
        while (parser.Accept<DocumentStart>(out _))
        {
            var document = deserializer.Deserialize<object?>(parser);
            if (document is null) continue;
            objects.Add(ToJson(document) as JsonObject
                        ?? throw new InvalidDataException("a rendered YAML document is not a mapping."));
        }
        return objects;
    }

    public IEnumerable<JsonObject> OfKind(string kind) => Objects.Where(o => Str(o, "kind") == kind);

    public JsonObject Single(string kind, string name)
    {
        var found = OfKind(kind).Where(o => Str(o, "metadata.name") == name).ToList();
        Assert.True(found.Count == 1, $"{Directory} should render exactly one {kind} '{name}'; found {found.Count}. "
                                      + $"It renders: {string.Join(", ", Objects.Select(o => $"{Str(o, "kind")}/{Str(o, "metadata.name")}"))}");
        return found[0];
    }

    /// <summary>The Deployment or StatefulSet whose pods run <paramref name="image"/> (repository part, before the tag).</summary>
    public JsonObject WorkloadRunning(string imageRepository)
    {
        var found = Objects.Where(o => Str(o, "kind") is "Deployment" or "StatefulSet")
            .Where(o => Containers(o).Any(c => ImageRepository(Str(c, "image")!) == imageRepository)).ToList();
        Assert.True(found.Count == 1, $"expected one workload running {imageRepository}, found {found.Count}.");
        return found[0];
    }

    public static IReadOnlyList<JsonObject> Containers(JsonObject workload) =>
        Arr(workload, "spec.template.spec.containers").Cast<JsonObject>().ToList();

    /// <summary>The Services whose selector picks the pods of <paramref name="workload"/>.</summary>
    public IEnumerable<JsonObject> ServicesSelecting(JsonObject workload)
    {
        var podLabels = Map(workload, "spec.template.metadata.labels");
        return OfKind("Service").Where(s =>
        {
            var selector = Map(s, "spec.selector");
            return selector.Count > 0 && selector.All(kv => podLabels.TryGetValue(kv.Key, out var v) && v == kv.Value);
        });
    }

    /// <summary>A container port number from a Service's or probe's targetPort (a number or a port name).</summary>
    public static int ResolvePort(JsonObject container, string portOrName)
    {
        if (int.TryParse(portOrName, out var number)) return number;
        var port = Arr(container, "ports").Cast<JsonObject>().SingleOrDefault(p => Str(p, "name") == portOrName);
        Assert.True(port is not null, $"container {Str(container, "name")} has no port named '{portOrName}'.");
        return int.Parse(Str(port, "containerPort")!);
    }

    public static string ImageRepository(string image)
    {
        var slash = image.LastIndexOf('/');
        var colon = image.IndexOf(':', slash + 1);
        return colon < 0 ? image : image[..colon];
    }

    public static string? ImageTag(string image)
    {
        var slash = image.LastIndexOf('/');
        var colon = image.IndexOf(':', slash + 1);
        return colon < 0 ? null : image[(colon + 1)..];
    }

    // ---- navigation by dotted path; a segment may be an index ("containers.0") ----

    public static JsonNode? At(JsonNode? node, string path)
    {
        foreach (var segment in path.Split('.'))
        {
            node = node switch
            {
                JsonObject obj => obj[segment],
                JsonArray array when int.TryParse(segment, out var i) && i < array.Count => array[i],
                _ => null,
            };
            if (node is null) return null;
        }
        return node;
    }

    public static string? Str(JsonNode? node, string path) => At(node, path)?.GetValue<string>();

    public static JsonArray Arr(JsonNode? node, string path) => At(node, path) as JsonArray ?? [];

    public static IReadOnlyDictionary<string, string> Map(JsonNode? node, string path) =>
        (At(node, path) as JsonObject)?.ToDictionary(kv => kv.Key, kv => kv.Value?.GetValue<string>() ?? "")
        ?? new Dictionary<string, string>();

    private static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        IDictionary<object, object?> map => new JsonObject(map.Select(kv =>
            KeyValuePair.Create(kv.Key.ToString()!, ToJson(kv.Value)))),
        IList<object?> list => new JsonArray(list.Select(ToJson).ToArray()),
        _ => JsonValue.Create(value.ToString()),
    };
}
