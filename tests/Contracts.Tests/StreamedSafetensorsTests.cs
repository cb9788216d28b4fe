using System.Buffers.Binary;
using System.Text;

namespace Headwise.Contracts.Tests;

/// <summary>
/// A safetensors file read as it arrives (<see cref="StreamedSafetensors"/>) gives exactly what the whole-file import
/// gives, however it is cut into chunks and in whatever order its tensors' bytes lie; it keeps only the attention
/// tensors of unfinished layers, reads past 2 GiB, and names what is missing when the stream ends early.
/// </summary>
public class StreamedSafetensorsTests
{
    private static List<LayerWeights> Stream(byte[] file, AttentionSpec spec, WeightLayout layout, string prefix, Random cuts, int maxChunk)
    {
        var reader = new StreamedSafetensors(spec, layout, prefix, long.MaxValue);
        var layers = new List<LayerWeights>();
        for (int at = 0; at < file.Length;)
        {
            int length = Math.Min(file.Length - at, cuts.Next(1, maxChunk + 1));
            layers.AddRange(reader.Accept(file.AsSpan(at, length)));
            at += length;
        }
        reader.Finish();
        return layers;
    }

    private static void AssertSame(LayerWeights[] expected, IEnumerable<LayerWeights> actual)
    {
        var byLayer = actual.OrderBy(l => l.Layer).ToArray();
        Assert.Equal(expected.Length, byLayer.Length);
        for (int l = 0; l < expected.Length; l++)
        {
            Assert.Equal(expected[l].Layer, byLayer[l].Layer);
            Assert.Equal(expected[l].OutputBias, byLayer[l].OutputBias);
            Assert.Equal(expected[l].Groups.Length, byLayer[l].Groups.Length);
            for (int g = 0; g < expected[l].Groups.Length; g++)
            {
                var (e, a) = (expected[l].Groups[g], byLayer[l].Groups[g]);
                Assert.Equal(e.Group, a.Group);
                Assert.Equal(e.Query, a.Query);
                Assert.Equal(e.Key, a.Key);
                Assert.Equal(e.Value, a.Value);
                Assert.Equal(e.Output, a.Output);
                Assert.Equal(e.QueryBias, a.QueryBias);
                Assert.Equal(e.KeyBias, a.KeyBias);
                Assert.Equal(e.ValueBias, a.ValueBias);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Golden.All), MemberType = typeof(Golden))]
    public void Every_golden_file_in_random_chunks_imports_exactly_as_the_whole_file(string name)
    {
        var bytes = File.ReadAllBytes(Golden.PathOf(name));
        var file = SafetensorsFile.Parse(bytes);
        var (spec, layout, prefix) = (Golden.Spec(file), Golden.Layout(file), Golden.Prefix(file));
        var whole = WeightImporter.Import(file, spec, layout, prefix);
        foreach (int maxChunk in new[] { 1 << 20, 4096, 7 })
            AssertSame(whole, Stream(bytes, spec, layout, prefix, new Random(maxChunk), maxChunk));
    }

    [Fact]
    public void Tensors_in_any_order_with_other_tensors_between_them_import_the_same()
    {
        var spec = new AttentionSpec { ModelDim = 32, HeadCount = 4, KvHeadCount = 2, HeadDim = 8, LayerCount = 3, Bias = true }.Resolve();
        var layers = SeededWeights.Create(spec, seed: 5).ToArray();
        var entries = WeightExporter.Export(layers, spec, WeightLayout.Linear, "model.layers.{layer}.self_attn.").ToList();
        // MLP-like tensors the import skips, interleaved, and the whole data section in a shuffled order.
        for (int l = 0; l < spec.LayerCount; l++)
            entries.Add(SafetensorsEntry.F32($"model.layers.{l}.mlp.up_proj.weight", new float[64 * 32], 64, 32));
        var shuffled = entries.OrderBy(_ => Random.Shared.Next()).ToList();
        var bytes = SafetensorsWriter.ToBytes(shuffled);
        var streamed = Stream(bytes, spec, WeightLayout.Linear, "model.layers.{layer}.self_attn.", new Random(1), 1000);
        AssertSame(layers, streamed);
    }

    [Fact]
    public void A_file_whose_data_runs_past_2_GiB_is_read_with_64_bit_offsets_and_without_keeping_what_it_skips()
    {
        var spec = new AttentionSpec { ModelDim = 16, HeadCount = 2, LayerCount = 1 }.Resolve();
        var layers = SeededWeights.Create(spec, seed: 8).ToArray();
        var attention = WeightExporter.Export(layers, spec, WeightLayout.Linear, "l.{layer}.").ToList();
        // The header by hand: a 2.25 GiB tensor first (an embedding, say), then the attention tensors after it.
        const long skipped = 9L << 28;
        var json = new StringBuilder("{\"embed.weight\":{\"dtype\":\"U8\",\"shape\":[" + skipped + "],\"data_offsets\":[0," + skipped + "]}");
        long offset = skipped;
        foreach (var entry in attention)
        {
            json.Append($",\"{entry.Name}\":{{\"dtype\":\"F32\",\"shape\":[{string.Join(",", entry.Shape)}],\"data_offsets\":[{offset},{offset + entry.Data.Length}]}}");
            offset += entry.Data.Length;
        }
        json.Append('}');
        var header = Encoding.UTF8.GetBytes(json.ToString());
        var reader = new StreamedSafetensors(spec, WeightLayout.Linear, "l.{layer}.", long.MaxValue);
        var start = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(start, (ulong)header.Length);
        Assert.Empty(reader.Accept(start));
        Assert.Empty(reader.Accept(header));
        var zeros = new byte[64 << 20];
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (long sent = 0; sent < skipped; sent += zeros.Length)
            Assert.Empty(reader.Accept(zeros.AsSpan(0, (int)Math.Min(zeros.Length, skipped - sent))));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "skipped bytes were kept");
        var streamed = new List<LayerWeights>();
        foreach (var entry in attention) streamed.AddRange(reader.Accept(entry.Data.Span));
        reader.Finish();
        Assert.True(reader.Received > int.MaxValue);
        AssertSame(layers, streamed);
    }

    [Fact]
    public void A_stream_that_ends_early_names_the_tensor_it_ended_in_and_one_past_the_limit_names_the_limit()
    {
        var bytes = File.ReadAllBytes(Golden.PathOf("gpt2-tiny"));
        var file = SafetensorsFile.Parse(bytes);
        var (spec, layout, prefix) = (Golden.Spec(file), Golden.Layout(file), Golden.Prefix(file));

        var cut = new StreamedSafetensors(spec, layout, prefix, long.MaxValue);
        cut.Accept(bytes.AsSpan(0, bytes.Length - 10));
        var ended = Assert.Throws<HeadwiseException>(cut.Finish);
        Assert.Equal(ErrorCode.InvalidArgument, ended.Code);
        Assert.Contains("before the end of tensor", ended.Message);

        var inHeader = new StreamedSafetensors(spec, layout, prefix, long.MaxValue);
        inHeader.Accept(bytes.AsSpan(0, 20));
        Assert.Contains("inside its header", Assert.Throws<HeadwiseException>(inHeader.Finish).Message);

        var limited = new StreamedSafetensors(spec, layout, prefix, maxBytes: bytes.Length - 1);
        var over = Assert.Throws<HeadwiseException>(() => limited.Accept(bytes));
        Assert.Equal(ErrorCode.ResourceExhausted, over.Code);
        Assert.Contains("Headwise__MaxUploadBytes", over.Message);
    }
}
