using System.Globalization;
using Headwise.Contracts;

namespace Headwise.TestSupport;

/// <summary>
/// One file of tests/golden: weights, input and the outputs libtorch computed in float64 (see its README).
/// </summary>
public sealed class GoldenCase
{
    public static readonly string[] Names = ["gpt2-tiny", "gpt2-small-shape", "linear-mha-bias", "linear-gqa-window", "linear-wide-heads"];

    private GoldenCase(string name, byte[] bytes)
    {
        Name = name;
        Bytes = bytes;
        File = SafetensorsFile.Parse(bytes);
        var meta = File.Metadata;
        int Int(string key) => int.Parse(meta[key], CultureInfo.InvariantCulture);
        Layout = meta["layout"] == "gpt2" ? WeightLayout.Gpt2 : WeightLayout.Linear;
        Prefix = meta["prefix"];
        Window = Int("window");
        Spec = new AttentionSpec
        {
            ModelDim = Int("model_dim"),
            HeadCount = Int("head_count"),
            KvHeadCount = Int("kv_head_count"),
            HeadDim = Int("head_dim"),
            LayerCount = Int("layers"),
            Bias = meta["bias"] == "true",
        };
        Batch = Int("batch");
        Tokens = Int("tokens");
        Input = File.Get("input").ToFloat32();
        Lengths = File.Get("lengths").ToInt32();
    }

    public string Name { get; }
    /// <summary>The whole safetensors file, as an upload sends it.</summary>
    public byte[] Bytes { get; }
    public SafetensorsFile File { get; }
    public WeightLayout Layout { get; }
    public string Prefix { get; }
    /// <summary>The spec without the window: the file's full/causal/padded outputs use no window.</summary>
    public AttentionSpec Spec { get; }
    /// <summary>The sliding window of the causal_window outputs; 0 when the case has none.</summary>
    public int Window { get; }
    public int Batch { get; }
    public int Tokens { get; }
    /// <summary>[Batch, Tokens, D]</summary>
    public float[] Input { get; }
    public int[] Lengths { get; }

    public static GoldenCase Load(string name) =>
        new(name, System.IO.File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "golden", name + ".safetensors")));

    public float[] Expected(string tensor) => File.Get(tensor).ToFloat32();

    /// <summary>Every expected.{layer}.{mask} output of the file, with how to ask for it.</summary>
    public IEnumerable<GoldenExpectation> Expectations()
    {
        foreach (var name in File.Tensors.Keys.Where(k => k.StartsWith("expected.", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var parts = name.Split('.');
            int layer = int.Parse(parts[1], CultureInfo.InvariantCulture);
            string mask = parts[2];
            yield return new GoldenExpectation(name, layer,
                Causal: mask.StartsWith("causal", StringComparison.Ordinal),
                Padded: mask.EndsWith("padded", StringComparison.Ordinal),
                Windowed: mask == "causal_window");
        }
    }
}

/// <summary>One expected tensor: the layer and the masks that produced it.</summary>
public sealed record GoldenExpectation(string Tensor, int Layer, bool Causal, bool Padded, bool Windowed);
