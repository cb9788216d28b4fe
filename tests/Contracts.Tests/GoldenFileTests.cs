namespace Headwise.Contracts.Tests;

/// <summary>The golden files parse, and their metadata and tensors agree with tests/golden/README.md.</summary>
public class GoldenFileTests
{
    // file, layout, D, Hq, Hkv, dh, L, B, T, bias, window, lengths (the README's table)
    public static IEnumerable<object[]> Cases() =>
    [
        ["gpt2-tiny", "gpt2", 64, 4, 4, 16, 2, 2, 9, true, 0, new[] { 9, 5 }],
        ["gpt2-small-shape", "gpt2", 768, 12, 12, 64, 1, 1, 128, true, 0, new[] { 128 }],
        ["linear-mha-bias", "linear", 96, 6, 6, 16, 1, 3, 11, true, 0, new[] { 11, 7, 1 }],
        ["linear-gqa-window", "linear", 128, 8, 2, 16, 1, 2, 17, false, 5, new[] { 17, 12 }],
        ["linear-wide-heads", "linear", 80, 4, 4, 32, 1, 1, 6, true, 0, new[] { 6 }],
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void MetadataAndTensorsMatchTheReadme(string name, string layout, int d, int hq, int hkv, int dh, int layers,
        int batch, int tokens, bool bias, int window, int[] lengths)
    {
        var file = Golden.Load(name);
        var m = file.Metadata;
        Assert.Equal(layout, m["layout"]);
        Assert.Equal(layout == "gpt2" ? "h.{layer}.attn." : "model.layers.{layer}.self_attn.", m["prefix"]);
        Assert.Equal(d.ToString(), m["model_dim"]);
        Assert.Equal(hq.ToString(), m["head_count"]);
        Assert.Equal(hkv.ToString(), m["kv_head_count"]);
        Assert.Equal(dh.ToString(), m["head_dim"]);
        Assert.Equal(layers.ToString(), m["layers"]);
        Assert.Equal(bias ? "true" : "false", m["bias"]);
        Assert.Equal(window.ToString(), m["window"]);
        Assert.Equal(batch.ToString(), m["batch"]);
        Assert.Equal(tokens.ToString(), m["tokens"]);
        Assert.Equal("libtorch 2.10.0 float64", m["reference"]);
        Assert.True(int.TryParse(m["seed"], out _));

        // Exactly the README's tensors, with the README's shapes and dtypes.
        var expected = new Dictionary<string, long[]>
        {
            ["input"] = [batch, tokens, d],
            ["lengths"] = [batch],
            ["attention.0.causal"] = [batch, hq, tokens, tokens],
            ["head_outputs.0.causal"] = [batch, hq, tokens, dh],
        };
        (string Suffix, long[] Shape, bool IsBias)[] weights = layout == "gpt2"
            ?
            [
                ("c_attn.weight", [d, 3 * d], false), ("c_attn.bias", [3 * d], true),
                ("c_proj.weight", [d, d], false), ("c_proj.bias", [d], true),
            ]
            :
            [
                ("q_proj.weight", [hq * dh, d], false), ("q_proj.bias", [hq * dh], true),
                ("k_proj.weight", [hkv * dh, d], false), ("k_proj.bias", [hkv * dh], true),
                ("v_proj.weight", [hkv * dh, d], false), ("v_proj.bias", [hkv * dh], true),
                ("o_proj.weight", [d, hq * dh], false), ("o_proj.bias", [d], true),
            ];
        foreach (var (suffix, shape, isBias) in weights)
            for (int l = 0; l < layers; l++)
                if (bias || !isBias)
                    expected[m["prefix"].Replace("{layer}", l.ToString()) + suffix] = shape;
        for (int l = 0; l < layers; l++)
        {
            foreach (string mask in new[] { "full", "causal", "padded", "causal_padded" })
                expected[$"expected.{l}.{mask}"] = [batch, tokens, d];
            if (window > 0)
                expected[$"expected.{l}.causal_window"] = [batch, tokens, d];
        }
        Assert.Equal(expected.Keys.Order(), file.Tensors.Keys.Order());
        foreach (var (tensorName, shape) in expected)
        {
            var tensor = file.Get(tensorName);
            Assert.Equal(shape, tensor.Shape);
            Assert.Equal(tensorName == "lengths" ? SafetensorsDType.I32 : SafetensorsDType.F32, tensor.DType);
        }
        Assert.Equal(lengths, file.Get("lengths").ToInt32());
    }

    [Theory]
    [MemberData(nameof(Golden.All), MemberType = typeof(Golden))]
    public void CausalAttentionRowsSumToOneAndHideLaterKeys(string name)
    {
        var file = Golden.Load(name);
        var attention = file.Get("attention.0.causal");
        float[] p = attention.ToFloat32();
        int tokens = (int)attention.Shape[3];
        for (int row = 0; row < p.Length / tokens; row++)
        {
            int query = row % tokens;
            double sum = 0;
            for (int key = 0; key < tokens; key++)
            {
                float value = p[row * tokens + key];
                if (key > query)
                    Assert.Equal(0f, value);
                sum += value;
            }
            Assert.InRange(sum, 1 - 1e-5, 1 + 1e-5);
        }
    }

    [Theory]
    [MemberData(nameof(Golden.All), MemberType = typeof(Golden))]
    public async Task ReadAsyncMatchesParse(string name)
    {
        var read = await SafetensorsFile.ReadAsync(Golden.PathOf(name));
        var parsed = Golden.Load(name);
        Assert.Equal(parsed.Metadata, read.Metadata);
        Assert.Equal(parsed.Tensors.Keys.Order(), read.Tensors.Keys.Order());
        foreach (var (tensorName, tensor) in parsed.Tensors)
            Assert.True(tensor.Data.Span.SequenceEqual(read.Get(tensorName).Data.Span), tensorName);
    }
}
