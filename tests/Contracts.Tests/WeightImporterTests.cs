using System.Buffers.Binary;

namespace Headwise.Contracts.Tests;

/// <summary>Import errors, dtype conversion, and export → import round trips on seeded weights.</summary>
public class WeightImporterTests
{
    private static readonly AttentionSpec Gpt2Tiny = new AttentionSpec { ModelDim = 64, HeadCount = 4, LayerCount = 2, Bias = true }.Resolve();
    private const string Gpt2Prefix = "h.{layer}.attn.";
    private const string LinearPrefix = "model.layers.{layer}.self_attn.";

    /// <summary>gpt2-tiny's layout tensors (weights only), with one changed or left out.</summary>
    private static SafetensorsFile Gpt2File(Func<SafetensorsEntry, SafetensorsEntry?>? change = null, params SafetensorsEntry[] extra)
    {
        var entries = WeightExporter.Export(SeededWeights.Create(Gpt2Tiny, 1), Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix)
            .Select(e => change is null ? e : change(e)).OfType<SafetensorsEntry>().Concat(extra);
        return SafetensorsFile.Parse(SafetensorsWriter.ToBytes(entries));
    }

    private static void AssertSameWeights(IReadOnlyList<LayerWeights> expected, IReadOnlyList<LayerWeights> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int l = 0; l < expected.Count; l++)
        {
            Assert.Equal(expected[l].Layer, actual[l].Layer);
            Assert.Equal(expected[l].OutputBias, actual[l].OutputBias);
            Assert.Equal(expected[l].Groups.Length, actual[l].Groups.Length);
            for (int k = 0; k < expected[l].Groups.Length; k++)
            {
                GroupWeights e = expected[l].Groups[k], a = actual[l].Groups[k];
                Assert.Equal(e.Group, a.Group);
                Assert.Equal(e.Query, a.Query);
                Assert.Equal(e.Key, a.Key);
                Assert.Equal(e.Value, a.Value);
                Assert.Equal(e.QueryBias, a.QueryBias);
                Assert.Equal(e.KeyBias, a.KeyBias);
                Assert.Equal(e.ValueBias, a.ValueBias);
                Assert.Equal(e.Output, a.Output);
            }
        }
    }

    public static IEnumerable<object[]> RoundTripCases() =>
    [
        [WeightLayout.Gpt2, new AttentionSpec { ModelDim = 64, HeadCount = 4, LayerCount = 2, Bias = true }],
        [WeightLayout.Gpt2, new AttentionSpec { ModelDim = 24, HeadCount = 3, Bias = false }],
        [WeightLayout.Linear, new AttentionSpec { ModelDim = 32, HeadCount = 8, KvHeadCount = 2, HeadDim = 8, LayerCount = 3, Bias = false }],
        [WeightLayout.Linear, new AttentionSpec { ModelDim = 20, HeadCount = 6, KvHeadCount = 3, HeadDim = 5, Bias = true }],
        [WeightLayout.Linear, new AttentionSpec { ModelDim = 16, HeadCount = 4, KvHeadCount = 1, HeadDim = 8, LayerCount = 2, Bias = true }],
    ];

    [Theory]
    [MemberData(nameof(RoundTripCases))]
    public void ExportThenImportGivesTheSameWeights(WeightLayout layout, AttentionSpec spec)
    {
        spec = spec.Resolve();
        string prefix = layout == WeightLayout.Gpt2 ? Gpt2Prefix : LinearPrefix;
        var weights = SeededWeights.Create(spec, seed: 42);
        var file = SafetensorsFile.Parse(SafetensorsWriter.ToBytes(WeightExporter.Export(weights, spec, layout, prefix)));
        AssertSameWeights(weights, WeightImporter.Import(file, spec, layout, prefix));
    }

    [Fact]
    public void ASingleLayerPrefixNeedNotNameTheLayer()
    {
        var spec = new AttentionSpec { ModelDim = 16, HeadCount = 2, Bias = true }.Resolve();
        var weights = SeededWeights.Create(spec, 3);
        var entries = WeightExporter.Export(weights, spec, WeightLayout.Linear, "attn.");
        Assert.Contains(entries, e => e.Name == "attn.q_proj.weight");
        AssertSameWeights(weights, WeightImporter.Import(SafetensorsFile.Parse(SafetensorsWriter.ToBytes(entries)), spec, WeightLayout.Linear, "attn."));
    }

    [Theory]
    [InlineData(SafetensorsDType.F16)]
    [InlineData(SafetensorsDType.BF16)]
    public void HalfPrecisionTensorsImportAsTheirFloat32Values(SafetensorsDType dtype)
    {
        var spec = new AttentionSpec { ModelDim = 32, HeadCount = 4, KvHeadCount = 2, HeadDim = 8, Bias = true }.Resolve();
        var f32 = WeightExporter.Export(SeededWeights.Create(spec, 9), spec, WeightLayout.Linear, LinearPrefix);
        var narrow = new List<SafetensorsEntry>();
        var rounded = new List<SafetensorsEntry>();
        foreach (var entry in f32)
        {
            float[] values = FloatBytes.ToFloats(entry.Data.Span);
            var bytes = new byte[2 * values.Length];
            var widened = new float[values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                if (dtype == SafetensorsDType.F16)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(2 * i), (Half)values[i]);
                    widened[i] = (float)(Half)values[i];
                }
                else
                {
                    uint bits = BitConverter.SingleToUInt32Bits(values[i]);
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), (ushort)(bits >> 16)); // truncate
                    widened[i] = BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000);
                }
            }
            narrow.Add(new SafetensorsEntry(entry.Name, dtype, entry.Shape, bytes));
            rounded.Add(SafetensorsEntry.F32(entry.Name, widened, entry.Shape));
        }
        var fromNarrow = WeightImporter.Import(SafetensorsFile.Parse(SafetensorsWriter.ToBytes(narrow)), spec, WeightLayout.Linear, LinearPrefix);
        var fromRounded = WeightImporter.Import(SafetensorsFile.Parse(SafetensorsWriter.ToBytes(rounded)), spec, WeightLayout.Linear, LinearPrefix);
        AssertSameWeights(fromRounded, fromNarrow);
    }

    [Fact]
    public void TensorsTheLayoutDoesNotUseAreIgnored()
    {
        var file = Gpt2File(null,
            new SafetensorsEntry("h.0.attn.bias", SafetensorsDType.U8, [1, 1, 4, 4], new byte[16]), // GPT-2's causal mask buffer
            SafetensorsEntry.F32("h.0.mlp.c_fc.weight", new float[8], 2, 4),
            new SafetensorsEntry("wte.weight", SafetensorsDType.I64, [1], new byte[8]));
        Assert.Equal(2, WeightImporter.Import(file, Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix).Length);
    }

    [Fact]
    public void AMissingTensorIsNamedWithItsExpectedShape()
    {
        var file = Gpt2File(e => e.Name == "h.0.attn.c_attn.weight" ? null : e);
        Expect.Invalid(() => WeightImporter.Import(file, Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix),
            "tensor 'h.0.attn.c_attn.weight' is missing; expected [64, 192]");
    }

    [Fact]
    public void AProblemInTheLastLayerFailsTheWholeImport()
    {
        var file = Gpt2File(e => e.Name == "h.1.attn.c_proj.bias" ? null : e);
        Expect.Invalid(() => WeightImporter.Import(file, Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix),
            "tensor 'h.1.attn.c_proj.bias' is missing; expected [64]");
    }

    [Fact]
    public void AMisShapedTensorIsNamedWithBothShapes()
    {
        var file = Gpt2File(e => e.Name == "h.0.attn.c_proj.weight" ? SafetensorsEntry.F32(e.Name, new float[64 * 32], 64, 32) : e);
        Expect.Invalid(() => WeightImporter.Import(file, Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix),
            "tensor 'h.0.attn.c_proj.weight' has shape [64, 32]; expected [64, 64]");
    }

    [Fact]
    public void ATransposedTensorIsAShapeError()
    {
        var file = Gpt2File(e => e.Name == "h.1.attn.c_attn.weight" ? SafetensorsEntry.F32(e.Name, new float[64 * 192], 192, 64) : e);
        Expect.Invalid(() => WeightImporter.Import(file, Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix),
            "tensor 'h.1.attn.c_attn.weight' has shape [192, 64]; expected [64, 192]");
    }

    [Theory]
    [InlineData(SafetensorsDType.F64)]
    [InlineData(SafetensorsDType.I32)]
    [InlineData(SafetensorsDType.U8)]
    public void ANonFloatTensorIsNamedWithItsDType(SafetensorsDType dtype)
    {
        var file = Gpt2File(e => e.Name == "h.0.attn.c_attn.bias" ? new SafetensorsEntry(e.Name, dtype, [192], new byte[192 * dtype.ByteSize()]) : e);
        Expect.Invalid(() => WeightImporter.Import(file, Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix),
            "tensor 'h.0.attn.c_attn.bias' has dtype " + dtype, "expected F32, F16 or BF16");
    }

    [Fact]
    public void ABiasTheSpecDoesNotExpectIsAnError()
    {
        var withBias = new AttentionSpec { ModelDim = 32, HeadCount = 4, KvHeadCount = 2, Bias = true }.Resolve();
        var entries = WeightExporter.Export(SeededWeights.Create(withBias, 1), withBias, WeightLayout.Linear, LinearPrefix);
        var file = SafetensorsFile.Parse(SafetensorsWriter.ToBytes(entries));
        Expect.Invalid(() => WeightImporter.Import(file, withBias with { Bias = false }, WeightLayout.Linear, LinearPrefix),
            "spec.bias is false but tensor 'model.layers.0.self_attn.q_proj.bias' exists");

        var onlyOutputBias = SafetensorsFile.Parse(SafetensorsWriter.ToBytes(entries.Where(e => !e.Name.EndsWith("q_proj.bias") && !e.Name.EndsWith("k_proj.bias") && !e.Name.EndsWith("v_proj.bias"))));
        Expect.Invalid(() => WeightImporter.Import(onlyOutputBias, withBias with { Bias = false }, WeightLayout.Linear, LinearPrefix),
            "spec.bias is false but tensor 'model.layers.0.self_attn.o_proj.bias' exists");
    }

    [Fact]
    public void AMissingBiasIsAnErrorWhenTheSpecHasBias()
    {
        var noBias = new AttentionSpec { ModelDim = 32, HeadCount = 4, KvHeadCount = 2, Bias = false }.Resolve();
        var file = SafetensorsFile.Parse(SafetensorsWriter.ToBytes(WeightExporter.Export(SeededWeights.Create(noBias, 1), noBias, WeightLayout.Linear, LinearPrefix)));
        Expect.Invalid(() => WeightImporter.Import(file, noBias with { Bias = true }, WeightLayout.Linear, LinearPrefix),
            "tensor 'model.layers.0.self_attn.q_proj.bias' is missing; expected [32]");
    }

    [Fact]
    public void LinearShapesFollowTheSpecsHeadCounts()
    {
        // Hq·dh = 48 ≠ D = 32, Hkv·dh = 24.
        var spec = new AttentionSpec { ModelDim = 32, HeadCount = 4, KvHeadCount = 2, HeadDim = 12 }.Resolve();
        var other = spec with { KvHeadCount = 4 };
        var file = SafetensorsFile.Parse(SafetensorsWriter.ToBytes(WeightExporter.Export(SeededWeights.Create(other, 1), other, WeightLayout.Linear, LinearPrefix)));
        Expect.Invalid(() => WeightImporter.Import(file, spec, WeightLayout.Linear, LinearPrefix),
            "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [48, 32]; expected [24, 32]");
    }

    [Fact]
    public void APrefixWithoutTheLayerPlaceholderIsRefusedForSeveralLayers()
    {
        var file = Gpt2File();
        Expect.Invalid(() => WeightImporter.Import(file, Gpt2Tiny, WeightLayout.Gpt2, "h.0.attn."), "prefix 'h.0.attn.'", "{layer}", "spec.layer_count is 2");
        Expect.Invalid(() => WeightExporter.Export(SeededWeights.Create(Gpt2Tiny, 1), Gpt2Tiny, WeightLayout.Gpt2, "h.attn."), "prefix 'h.attn.'");
    }

    [Fact]
    public void Gpt2LayoutNeedsHeadsThatTileTheModelDimension()
    {
        var file = Gpt2File();
        Expect.Invalid(() => WeightImporter.Import(file, Gpt2Tiny with { HeadDim = 8 }, WeightLayout.Gpt2, Gpt2Prefix),
            "spec.head_dim 8", "spec.model_dim 64");
        Expect.Invalid(() => WeightImporter.Import(file, Gpt2Tiny with { KvHeadCount = 2 }, WeightLayout.Gpt2, Gpt2Prefix),
            "spec.kv_head_count is 2", "spec.head_count 4");
    }

    [Fact]
    public void AnUnknownLayoutIsRefused() =>
        Expect.Invalid(() => WeightImporter.Import(Gpt2File(), Gpt2Tiny, (WeightLayout)7, Gpt2Prefix), "layout 7");

    [Fact]
    public void AnInvalidSpecIsRefusedByResolve() =>
        Expect.Invalid(() => WeightImporter.Import(Gpt2File(), Gpt2Tiny with { HeadCount = 5, HeadDim = 0 }, WeightLayout.Gpt2, Gpt2Prefix), "spec.");

    [Fact]
    public void ExportRefusesWeightsThatDoNotFitTheSpec()
    {
        var weights = SeededWeights.Create(Gpt2Tiny, 1);
        Expect.Invalid(() => WeightExporter.Export(weights[..1], Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix), "layers has 1 entries", "spec.layer_count 2");
        Expect.Invalid(() => WeightExporter.Export(weights, Gpt2Tiny with { Bias = false }, WeightLayout.Gpt2, Gpt2Prefix), "layers[0].groups[0].query_bias", "spec.bias is false");
        var shortKey = weights[1] with { Groups = [.. weights[1].Groups[..3], weights[1].Groups[3] with { Key = new byte[4] }] };
        Expect.Invalid(() => WeightExporter.Export([weights[0], shortKey], Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix), "layers[1].groups[3].key", "4 bytes", "expected 4096");
        var repeated = weights[0] with { Groups = [.. weights[0].Groups[..3], weights[0].Groups[0]] };
        Expect.Invalid(() => WeightExporter.Export([repeated, weights[1]], Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix), "layers[0].groups[3].group is 0");
        var swapped = weights[0] with { Layer = 1 };
        Expect.Invalid(() => WeightExporter.Export([swapped, weights[1]], Gpt2Tiny, WeightLayout.Gpt2, Gpt2Prefix), "layers[0].layer is 1; expected 0");
    }

    [Fact]
    public void ExportPlacesGroupsByTheirIndexNotTheirPosition()
    {
        var spec = new AttentionSpec { ModelDim = 16, HeadCount = 4, KvHeadCount = 2, HeadDim = 4 }.Resolve();
        var weights = SeededWeights.Create(spec, 5);
        var reversed = weights[0] with { Groups = weights[0].Groups.Reverse().ToArray() };
        var a = WeightExporter.Export(weights, spec, WeightLayout.Linear, LinearPrefix);
        var b = WeightExporter.Export([reversed], spec, WeightLayout.Linear, LinearPrefix);
        Assert.Equal(a.Select(e => e.Data.ToArray()), b.Select(e => e.Data.ToArray()));
    }
}
