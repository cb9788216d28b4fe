using System.Collections.Concurrent;
using System.Globalization;

namespace Headwise.Contracts.Tests;

/// <summary>The golden safetensors files of tests/golden, copied next to the test assembly.</summary>
internal static class Golden
{
    public static readonly string[] Names =
        ["gpt2-tiny", "gpt2-small-shape", "linear-mha-bias", "linear-gqa-window", "linear-wide-heads"];

    public static TheoryData<string> All()
    {
        var data = new TheoryData<string>();
        foreach (string name in Names)
            data.Add(name);
        return data;
    }

    private static readonly ConcurrentDictionary<string, Lazy<SafetensorsFile>> Cache = new();

    public static string PathOf(string name) => Path.Combine(AppContext.BaseDirectory, "golden", name + ".safetensors");

    /// <summary>The parsed file, read once per test run.</summary>
    public static SafetensorsFile Load(string name) =>
        Cache.GetOrAdd(name, n => new Lazy<SafetensorsFile>(() => SafetensorsFile.Parse(File.ReadAllBytes(PathOf(n))))).Value;

    public static int Int(SafetensorsFile file, string key) => int.Parse(file.Metadata[key], CultureInfo.InvariantCulture);

    /// <summary>The spec the file's __metadata__ describes.</summary>
    public static AttentionSpec Spec(SafetensorsFile file) => new AttentionSpec
    {
        ModelDim = Int(file, "model_dim"),
        HeadCount = Int(file, "head_count"),
        KvHeadCount = Int(file, "kv_head_count"),
        HeadDim = Int(file, "head_dim"),
        LayerCount = Int(file, "layers"),
        Bias = file.Metadata["bias"] switch
        {
            "true" => true,
            "false" => false,
            var other => throw new InvalidDataException($"bias metadata '{other}'"),
        },
        Window = Int(file, "window"),
    }.Resolve();

    public static WeightLayout Layout(SafetensorsFile file) => file.Metadata["layout"] switch
    {
        "gpt2" => WeightLayout.Gpt2,
        "linear" => WeightLayout.Linear,
        var other => throw new InvalidDataException($"layout metadata '{other}'"),
    };

    public static string Prefix(SafetensorsFile file) => file.Metadata["prefix"];
}

internal static class Expect
{
    /// <summary>Runs <paramref name="action"/>, expecting InvalidArgument with every fragment in the message.</summary>
    public static HeadwiseException Invalid(Action action, params string[] fragments)
    {
        var e = Assert.Throws<HeadwiseException>(action);
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        foreach (string fragment in fragments)
            Assert.Contains(fragment, e.Message);
        return e;
    }

    public static HeadwiseException Invalid(Func<object?> func, params string[] fragments) => Invalid(() => { func(); }, fragments);
}
