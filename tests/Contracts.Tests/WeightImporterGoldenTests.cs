namespace Headwise.Contracts.Tests;

/// <summary>
/// Importing the golden files, checked against libtorch's outputs through <see cref="AttentionOracle"/>: the raw
/// layout math shows the oracle is right, the same math over the imported groups shows the import is.
/// </summary>
public class WeightImporterGoldenTests
{
    private static (SafetensorsFile File, AttentionSpec Spec, LayerWeights[] Layers) Import(string name)
    {
        var file = Golden.Load(name);
        var spec = Golden.Spec(file);
        return (file, spec, WeightImporter.Import(file, spec, Golden.Layout(file), Golden.Prefix(file)));
    }

    [Theory]
    [MemberData(nameof(Golden.All), MemberType = typeof(Golden))]
    public void ImportedGroupsHaveTheSpecsShapes(string name)
    {
        var (_, spec, layers) = Import(name);
        int d = spec.ModelDim, dh = spec.HeadDim, width = spec.GroupSize * dh;
        Assert.Equal(spec.LayerCount, layers.Length);
        for (int l = 0; l < layers.Length; l++)
        {
            Assert.Equal(l, layers[l].Layer);
            Assert.Equal(spec.KvHeadCount, layers[l].Groups.Length);
            Assert.Equal(spec.Bias ? 4 * d : -1, layers[l].OutputBias?.Length ?? -1);
            for (int k = 0; k < spec.KvHeadCount; k++)
            {
                var group = layers[l].Groups[k];
                Assert.Equal(k, group.Group);
                Assert.Equal(4 * d * width, group.Query.Length);
                Assert.Equal(4 * d * dh, group.Key.Length);
                Assert.Equal(4 * d * dh, group.Value.Length);
                Assert.Equal(4 * width * d, group.Output.Length);
                Assert.Equal(spec.Bias ? 4 * width : -1, group.QueryBias?.Length ?? -1);
                Assert.Equal(spec.Bias ? 4 * dh : -1, group.KeyBias?.Length ?? -1);
                Assert.Equal(spec.Bias ? 4 * dh : -1, group.ValueBias?.Length ?? -1);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Golden.All), MemberType = typeof(Golden))]
    public void RawTensorsAndImportedGroupsBothReproduceTheCausalOutput(string name)
    {
        var (file, spec, layers) = Import(name);
        int batch = Golden.Int(file, "batch"), tokens = Golden.Int(file, "tokens"), d = spec.ModelDim;
        for (int l = 0; l < spec.LayerCount; l++)
        {
            float[] expected = file.Get($"expected.{l}.causal").ToFloat32();
            for (int b = 0; b < batch; b++)
            {
                double[] x = AttentionOracle.Input(file, b);
                var reference = expected.AsSpan(b * tokens * d, tokens * d);
                AttentionOracle.AssertClose(reference, AttentionOracle.FromFile(file, l, x, window: 0), $"{name} layer {l} batch {b}, raw tensors");
                AttentionOracle.AssertClose(reference, AttentionOracle.FromGroups(layers[l], spec, x, window: 0), $"{name} layer {l} batch {b}, imported groups");
            }
        }
    }

    [Fact]
    public void GroupedQueryWindowCaseMatchesBothWays()
    {
        var (file, spec, layers) = Import("linear-gqa-window");
        Assert.Equal(4, spec.GroupSize); // 8 query heads over 2 key/value heads
        int window = Golden.Int(file, "window"), batch = Golden.Int(file, "batch"), tokens = Golden.Int(file, "tokens");
        Assert.Equal(5, window);
        float[] expected = file.Get("expected.0.causal_window").ToFloat32();
        for (int b = 0; b < batch; b++)
        {
            double[] x = AttentionOracle.Input(file, b);
            var reference = expected.AsSpan(b * tokens * spec.ModelDim, tokens * spec.ModelDim);
            AttentionOracle.AssertClose(reference, AttentionOracle.FromFile(file, 0, x, window), $"batch {b}, raw tensors");
            AttentionOracle.AssertClose(reference, AttentionOracle.FromGroups(layers[0], spec, x, window), $"batch {b}, imported groups");
        }
    }

    [Theory]
    [MemberData(nameof(Golden.All), MemberType = typeof(Golden))]
    public void ExportGivesBackTheFilesTensorsBitForBit(string name)
    {
        var (file, spec, layers) = Import(name);
        var exported = WeightExporter.Export(layers, spec, Golden.Layout(file), Golden.Prefix(file));
        Assert.Equal(spec.LayerCount * (Golden.Layout(file) == WeightLayout.Gpt2 ? 2 : 4) * (spec.Bias ? 2 : 1), exported.Count);
        foreach (var entry in exported)
        {
            var original = file.Get(entry.Name);
            Assert.Equal(SafetensorsDType.F32, entry.DType);
            Assert.Equal(original.Shape, entry.Shape);
            Assert.True(original.Data.Span.SequenceEqual(entry.Data.Span), entry.Name);
        }
    }

    [Fact]
    public void TheCheckNoticesAWrongHeadToGroupMapping()
    {
        var (file, spec, layers) = Import("linear-gqa-window");
        var groups = layers[0].Groups;
        // Give group 0 the key/value head of group 1: the kind of mistake a GQA import could make.
        var wrong = layers[0] with { Groups = [groups[0] with { Key = groups[1].Key, Value = groups[1].Value }, groups[1]] };
        double[] x = AttentionOracle.Input(file, 0);
        int size = Golden.Int(file, "tokens") * spec.ModelDim;
        float[] expected = file.Get("expected.0.causal").ToFloat32()[..size];
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AttentionOracle.AssertClose(expected, AttentionOracle.FromGroups(wrong, spec, x, 0), "wrong"));
    }
}
