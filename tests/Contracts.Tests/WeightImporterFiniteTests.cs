using System.Buffers.Binary;

namespace Headwise.Contracts.Tests;

/// <summary>A weight that is NaN or infinite would make every answer of its heads NaN: the import refuses the file and
/// names the tensor and the index, in whichever float dtype the value came.</summary>
public class WeightImporterFiniteTests
{
    private static readonly AttentionSpec Spec = new AttentionSpec { ModelDim = 64, HeadCount = 4, LayerCount = 2, Bias = true }.Resolve();
    private const string Prefix = "h.{layer}.attn.";

    public static TheoryData<string, string, int, string> Cases => new()
    {
        // tensor, dtype, flat index, the word the message must use
        { "h.0.attn.c_attn.weight", "F32", 0, "NaN" },
        { "h.1.attn.c_proj.weight", "F32", 4095, "infinite" },
        { "h.1.attn.c_attn.bias", "F32", 191, "NaN" },
        { "h.0.attn.c_proj.bias", "F16", 7, "infinite" },
        { "h.1.attn.c_attn.weight", "BF16", 100, "NaN" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_non_finite_weight_is_refused_naming_the_tensor(string tensor, string dtype, int index, string word)
    {
        var entries = WeightExporter.Export(SeededWeights.Create(Spec, 1), Spec, WeightLayout.Gpt2, Prefix)
            .Select(e => e.Name == tensor ? Poisoned(e, dtype, index, word == "NaN" ? float.NaN : float.NegativeInfinity) : e);
        var file = SafetensorsFile.Parse(SafetensorsWriter.ToBytes(entries));

        var error = Assert.Throws<HeadwiseException>(() => WeightImporter.Import(file, Spec, WeightLayout.Gpt2, Prefix));

        Assert.Equal(ErrorCode.InvalidArgument, error.Code);
        Assert.Contains($"tensor '{tensor}'", error.Message);
        Assert.Contains(word, error.Message);
        Assert.Contains($"flat index {index}", error.Message);
    }

    [Fact]
    public void The_largest_finite_weights_are_accepted()
    {
        var entries = WeightExporter.Export(SeededWeights.Create(Spec, 1), Spec, WeightLayout.Gpt2, Prefix)
            .Select(e => e.Name == "h.0.attn.c_attn.weight" ? Poisoned(e, "F32", 3, float.MaxValue) : e);
        var layers = WeightImporter.Import(SafetensorsFile.Parse(SafetensorsWriter.ToBytes(entries)), Spec, WeightLayout.Gpt2, Prefix);
        Assert.Equal(2, layers.Length);
    }

    /// <summary>The tensor in <paramref name="dtype"/> with one value replaced.</summary>
    private static SafetensorsEntry Poisoned(SafetensorsEntry entry, string dtype, int index, float value)
    {
        var values = FloatBytes.ToFloats(entry.Data.Span);
        values[index] = value;
        switch (dtype)
        {
            case "F16":
                var halves = new byte[values.Length * 2];
                for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteHalfLittleEndian(halves.AsSpan(2 * i), (Half)values[i]);
                return new SafetensorsEntry(entry.Name, SafetensorsDType.F16, entry.Shape, halves);
            case "BF16":
                return new SafetensorsEntry(entry.Name, SafetensorsDType.BF16, entry.Shape, Bf16.Encode(values));
            default:
                return new SafetensorsEntry(entry.Name, SafetensorsDType.F32, entry.Shape, FloatBytes.ToBytes(values));
        }
    }
}
