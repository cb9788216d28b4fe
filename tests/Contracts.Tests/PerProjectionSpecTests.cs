namespace Headwise.Contracts.Tests;

/// <summary>The spec's output_bias (apart from bias: Qwen2) and rope_scaling: validation messages, and the importer's view of b_O.</summary>
public class PerProjectionSpecTests
{
    private static readonly AttentionSpec Qwen2Like = new AttentionSpec
    {
        ModelDim = 32, HeadCount = 4, KvHeadCount = 2, LayerCount = 2, Bias = true, OutputBias = false, RopeTheta = 10000,
    }.Resolve();
    private const string Prefix = "model.layers.{layer}.self_attn.";

    [Fact]
    public void Output_bias_defaults_to_bias_and_resolves_to_null_unless_it_differs()
    {
        Assert.True(new AttentionSpec { ModelDim = 8, HeadCount = 2, Bias = true }.Resolve().HasOutputBias);
        Assert.False(new AttentionSpec { ModelDim = 8, HeadCount = 2 }.Resolve().HasOutputBias);
        Assert.Equal(new AttentionSpec { ModelDim = 8, HeadCount = 2, Bias = true }.Resolve(),
            new AttentionSpec { ModelDim = 8, HeadCount = 2, Bias = true, OutputBias = true }.Resolve());
        Assert.True(new AttentionSpec { ModelDim = 8, HeadCount = 2, OutputBias = true }.Resolve().HasOutputBias);
        Assert.False(Qwen2Like.HasOutputBias);
        Assert.False(Qwen2Like.OutputBias);
    }

    [Fact]
    public void A_qkv_bias_only_checkpoint_round_trips_with_no_output_bias_and_refuses_one()
    {
        var weights = SeededWeights.Create(Qwen2Like, 3);
        Assert.All(weights, layer => Assert.Null(layer.OutputBias));
        Assert.All(weights, layer => Assert.All(layer.Groups, g => Assert.NotNull(g.QueryBias)));
        var entries = WeightExporter.Export(weights, Qwen2Like, WeightLayout.Linear, Prefix);
        Assert.DoesNotContain(entries, e => e.Name.EndsWith("o_proj.bias", StringComparison.Ordinal));
        Assert.Contains(entries, e => e.Name == "model.layers.1.self_attn.q_proj.bias");

        var imported = WeightImporter.Import(SafetensorsFile.Parse(SafetensorsWriter.ToBytes(entries)), Qwen2Like, WeightLayout.Linear, Prefix);
        Assert.Equal(weights.SelectMany(l => l.Groups.Select(g => g.QueryBias)), imported.SelectMany(l => l.Groups.Select(g => g.QueryBias)));
        Assert.All(imported, layer => Assert.Null(layer.OutputBias));

        var withOutputBias = entries.Append(SafetensorsEntry.F32("model.layers.0.self_attn.o_proj.bias", new float[32], 32));
        Expect.Invalid(() => WeightImporter.Import(SafetensorsFile.Parse(SafetensorsWriter.ToBytes(withOutputBias)), Qwen2Like, WeightLayout.Linear, Prefix),
            "spec.output_bias is false but tensor 'model.layers.0.self_attn.o_proj.bias' exists");
    }

    public static TheoryData<RopeScaling?, float, string> BadScalings => new()
    {
        { new RopeScaling { Type = "yarn", Factor = 4 }, 10000, "spec.rope_scaling.type must be 'linear' or 'llama3', got 'yarn'" },
        { new RopeScaling { Type = "linear", Factor = 0 }, 10000, "spec.rope_scaling.factor must be a positive finite number, got 0" },
        { new RopeScaling { Type = "linear", Factor = 2, LowFreqFactor = 1 }, 10000, "spec.rope_scaling.type is 'linear', which takes only a factor" },
        { new RopeScaling { Type = "llama3", Factor = 8, LowFreqFactor = 4, HighFreqFactor = 1, OriginalMaxPositions = 8192 }, 10000,
            "spec.rope_scaling.high_freq_factor must be finite and greater than low_freq_factor 4, got 1" },
        { new RopeScaling { Type = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4 }, 10000, "spec.rope_scaling.original_max_positions must be positive, got 0" },
        { new RopeScaling { Type = "linear", Factor = 2 }, 0, "spec.rope_scaling is set but spec.rope_theta is 0" },
    };

    [Theory]
    [MemberData(nameof(BadScalings))]
    public void A_bad_rope_scaling_names_its_field(RopeScaling? scaling, float theta, string message) =>
        Expect.Invalid(() => new AttentionSpec { ModelDim = 16, HeadCount = 2, RopeTheta = theta, RopeScaling = scaling }.Resolve(), message);

    [Fact]
    public void Llama3_scaling_resolves_unchanged()
    {
        var scaling = new RopeScaling { Type = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositions = 8192 };
        Assert.Equal(scaling, new AttentionSpec { ModelDim = 16, HeadCount = 2, RopeTheta = 500000, RopeScaling = scaling }.Resolve().RopeScaling);
    }
}
