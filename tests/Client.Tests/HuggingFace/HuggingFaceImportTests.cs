using Headwise.Contracts;
using Headwise.TestSupport;
using F = Headwise.Contracts.SafetensorsDType;

namespace Headwise.Client.Tests;

/// <summary>
/// <see cref="HuggingFaceImport.ImportHuggingFaceAsync"/> against a real silo: tiny checkpoints of each architecture,
/// written by the tests with MLP, norm and embedding tensors beside the attention, imported, and every imported layer's
/// forward (causal, 40 tokens) checked against <see cref="HfAttentionOracle"/> computed from the checkpoint's own tensors,
/// within <see cref="Tolerance"/> (max abs 1e-4, relative Frobenius 1e-5). Bad checkpoints fail before anything is created.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class HuggingFaceImportTests(SiloFixture silo) : IAsyncLifetime
{
    private const int Tokens = 40;
    private IAttentionClient _client = null!;

    public Task InitializeAsync()
    {
        _client = silo.CreateGrpcClient();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _client.DisposeAsync();

    private sealed class Recorder : IProgress<ImportProgress>
    {
        public List<ImportProgress> Reports { get; } = [];
        public void Report(ImportProgress value) => Reports.Add(value);
    }

    private static float[] Input(int seed, int d)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, Tokens * d).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    private async Task AssertLayer(string model, int layer, float[] x, int d, double[] expected, string what)
    {
        var output = await _client.ForwardAsync(model, new AttentionInput { Input = new FloatTensor(x, 1, Tokens, d), Layer = layer, Causal = true });
        Tolerance.AssertClose(expected.Select(v => (float)v).ToArray(), output.Output.Data.Span, what);
    }

    /// <summary>Llama-family tensors of one layer, nn.Linear shapes, with the usual non-attention neighbours.</summary>
    private static void LinearLayer(HfCheckpoint checkpoint, int layer, F dtype, int d, int heads, int kvHeads, int dh, bool qkvBias, bool outputBias)
    {
        string p = $"model.layers.{layer}.";
        checkpoint.Add(p + "input_layernorm.weight", dtype, 1, d);
        checkpoint.Add(p + "self_attn.q_proj.weight", dtype, 0.2, heads * dh, d);
        checkpoint.Add(p + "self_attn.k_proj.weight", dtype, 0.2, kvHeads * dh, d);
        checkpoint.Add(p + "self_attn.v_proj.weight", dtype, 0.2, kvHeads * dh, d);
        if (qkvBias)
        {
            checkpoint.Add(p + "self_attn.q_proj.bias", dtype, 0.1, heads * dh);
            checkpoint.Add(p + "self_attn.k_proj.bias", dtype, 0.1, kvHeads * dh);
            checkpoint.Add(p + "self_attn.v_proj.bias", dtype, 0.1, kvHeads * dh);
        }
        checkpoint.Add(p + "self_attn.o_proj.weight", dtype, 0.2, d, heads * dh);
        if (outputBias) checkpoint.Add(p + "self_attn.o_proj.bias", dtype, 0.1, d);
        checkpoint.Add(p + "mlp.gate_proj.weight", dtype, 0.2, 2 * d, d);
        checkpoint.Add(p + "mlp.up_proj.weight", dtype, 0.2, 2 * d, d);
        checkpoint.Add(p + "mlp.down_proj.weight", dtype, 0.2, d, 2 * d);
        checkpoint.Add(p + "post_attention_layernorm.weight", dtype, 1, d);
    }

    private static double[] LinearOracle(HfCheckpoint c, HfAttentionOracle oracle, int layer, float[] x)
    {
        string p = $"model.layers.{layer}.self_attn.";
        float[]? Maybe(string name) => c.Has(p + name) ? c[p + name] : null;
        return oracle.Forward(x, c[p + "q_proj.weight"], c[p + "k_proj.weight"], c[p + "v_proj.weight"], c[p + "o_proj.weight"],
            Maybe("q_proj.bias"), Maybe("k_proj.bias"), Maybe("v_proj.bias"), Maybe("o_proj.bias"));
    }

    [Fact]
    public async Task Gpt2_checkpoint_imports_with_only_its_attention_sent_and_matches_float64()
    {
        const int d = 32, heads = 4, layers = 2;
        using var c = new HfCheckpoint(1);
        c.Config(new { model_type = "gpt2", architectures = new[] { "GPT2LMHeadModel" }, n_embd = d, n_head = heads, n_layer = layers, n_positions = 64 });
        c.Add("transformer.wte.weight", F.F16, 0.2, 100, d);
        c.Add("transformer.wpe.weight", F.F16, 0.2, 64, d);
        for (int l = 0; l < layers; l++)
        {
            string p = $"transformer.h.{l}.";
            c.Add(p + "ln_1.weight", F.F16, 1, d);
            c.Add(p + "attn.bias", F.F32, 1, 1, 1, 64, 64);    // the causal mask buffer old checkpoints carry
            c.Add(p + "attn.c_attn.weight", F.F16, 0.2, d, 3 * d);
            c.Add(p + "attn.c_attn.bias", F.F16, 0.1, 3 * d);
            c.Add(p + "attn.c_proj.weight", F.F16, 0.2, d, d);
            c.Add(p + "attn.c_proj.bias", F.F16, 0.1, d);
            c.Add(p + "mlp.c_fc.weight", F.F16, 0.2, d, 4 * d);
            c.Add(p + "mlp.c_proj.weight", F.F16, 0.2, 4 * d, d);
        }
        c.Write(shards: 1);

        var progress = new Recorder();
        var model = await _client.ImportHuggingFaceAsync(c.Directory, "hf-gpt2", progress: progress);
        Assert.True(model.Ready);
        Assert.Equal(new AttentionSpec { ModelDim = d, HeadCount = heads, LayerCount = layers, Bias = true, OutputBias = true }.Resolve(), model.Spec);

        // Exactly the attention tensors, as float32, plus a header of a few hundred bytes: no MLP, mask buffer or embedding.
        long attention = layers * 4L * (d * 3 * d + 3 * d + d * d + d);
        var last = progress.Reports[^1];
        Assert.Equal(last.TotalBytes, last.BytesSent);
        Assert.InRange(last.TotalBytes - attention, 8, 2048);
        Assert.Equal((layers, layers), (last.LayersDone, last.TotalLayers));
        // Reports only grow (the client reads 1 MiB at a time, so this small file may come in one report).
        Assert.All(progress.Reports.Zip(progress.Reports.Skip(1)), pair =>
            Assert.True(pair.Second.BytesSent > pair.First.BytesSent && pair.Second.LayersDone >= pair.First.LayersDone));

        var x = Input(1, d);
        for (int l = 0; l < layers; l++)
        {
            float[] attn = c[$"transformer.h.{l}.attn.c_attn.weight"], bias = c[$"transformer.h.{l}.attn.c_attn.bias"];
            var oracle = new HfAttentionOracle(d, heads, heads, d / heads, 1 / Math.Sqrt(d / heads), 0, null);
            var expected = oracle.Forward(x,
                HfAttentionOracle.Transpose(attn, d, 3 * d, 0, d), HfAttentionOracle.Transpose(attn, d, 3 * d, d, d),
                HfAttentionOracle.Transpose(attn, d, 3 * d, 2 * d, d), HfAttentionOracle.Transpose(c[$"transformer.h.{l}.attn.c_proj.weight"], d, d),
                bias[..d], bias[d..(2 * d)], bias[(2 * d)..], c[$"transformer.h.{l}.attn.c_proj.bias"]);
            await AssertLayer("hf-gpt2", l, x, d, expected, $"gpt2 layer {l}");
        }
    }

    [Fact]
    public async Task Sharded_llama_with_gqa_head_dim_and_llama3_rope_scaling_imports_the_chosen_layers_renumbered()
    {
        const int d = 48, heads = 6, kvHeads = 2, dh = 12, layers = 3;
        using var c = new HfCheckpoint(2);
        c.Config(new
        {
            model_type = "llama", hidden_size = d, num_attention_heads = heads, num_key_value_heads = kvHeads, head_dim = dh,
            num_hidden_layers = layers, rope_theta = 10000.0, attention_bias = false, intermediate_size = 2 * d,
            rope_scaling = new { rope_type = "llama3", factor = 4.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position_embeddings = 64 },
        });
        c.Add("model.embed_tokens.weight", F.BF16, 0.2, 100, d);
        for (int l = 0; l < layers; l++) LinearLayer(c, l, F.BF16, d, heads, kvHeads, dh, qkvBias: false, outputBias: false);
        c.Add("model.norm.weight", F.BF16, 1, d);
        c.Add("lm_head.weight", F.BF16, 0.2, 100, d);
        c.Write(shards: 3);

        var progress = new Recorder();
        var model = await _client.ImportHuggingFaceAsync(c.Directory, "hf-llama", new HuggingFaceImportOptions { Layers = [2, 0] }, progress);
        Assert.Equal((2, kvHeads, dh, 10000f), (model.Spec.LayerCount, model.Spec.KvHeadCount, model.Spec.HeadDim, model.Spec.RopeTheta));
        Assert.Equal(new RopeScaling { Type = "llama3", Factor = 4, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositions = 64 }, model.Spec.RopeScaling);
        Assert.False(model.Spec.Bias || model.Spec.HasOutputBias);
        long attention = 2 * 4L * (2 * heads * dh * d + 2 * kvHeads * dh * d);
        Assert.InRange(progress.Reports[^1].TotalBytes - attention, 8, 2048);
        Assert.Equal(2, progress.Reports[^1].LayersDone);

        // llama3 inv_freq, from the published formula: keep short wavelengths, divide long ones by the factor, blend between.
        var invFreq = HfAttentionOracle.DefaultInvFreq(10000, dh).Select(f =>
        {
            double wavelength = 2 * Math.PI / f;
            if (wavelength < 64 / 4.0) return f;
            if (wavelength > 64 / 1.0) return f / 4;
            double smooth = (64 / wavelength - 1) / (4 - 1);
            return (1 - smooth) * f / 4 + smooth * f;
        }).ToArray();
        var oracle = new HfAttentionOracle(d, heads, kvHeads, dh, 1 / Math.Sqrt(dh), 0, invFreq);
        var x = Input(2, d);
        await AssertLayer("hf-llama", 0, x, d, LinearOracle(c, oracle, 0, x), "llama model layer 0 = checkpoint layer 0");
        var layer2 = LinearOracle(c, oracle, 2, x);
        await AssertLayer("hf-llama", 1, x, d, layer2, "llama model layer 1 = checkpoint layer 2");

        // Decoding takes the same scaled frequencies at every absolute position: chunks of 7 give the causal forward.
        var session = await _client.OpenSessionAsync("hf-llama", layer: 1, maxTokens: Tokens);
        var decoded = new List<float>();
        for (int start = 0; start < Tokens; start += 7)
        {
            int count = Math.Min(7, Tokens - start);
            var step = await _client.DecodeAsync(session.Id, new FloatTensor(x.AsSpan(start * d, count * d).ToArray(), 1, count, d), start);
            decoded.AddRange(step.Output.Data.ToArray());
        }
        await _client.CloseSessionAsync(session.Id);
        Tolerance.AssertClose(layer2.Select(v => (float)v).ToArray(), decoded.ToArray(), "llama layer 1 decoded in chunks of 7");
    }

    [Fact]
    public async Task Qwen2_has_qkv_bias_without_output_bias_and_its_window_from_max_window_layers()
    {
        const int d = 32, heads = 4, kvHeads = 2, layers = 3;
        using var c = new HfCheckpoint(3);
        c.Config(new
        {
            model_type = "qwen2", hidden_size = d, num_attention_heads = heads, num_key_value_heads = kvHeads, num_hidden_layers = layers,
            rope_theta = 1000000.0, use_sliding_window = true, sliding_window = 5, max_window_layers = 1, rope_scaling = (object?)null,
        });
        for (int l = 0; l < layers; l++) LinearLayer(c, l, F.F16, d, heads, kvHeads, d / heads, qkvBias: true, outputBias: false);
        c.Write(shards: 2);

        var mixed = await Assert.ThrowsAsync<HeadwiseException>(() =>
            _client.ImportHuggingFaceAsync(c.Directory, "hf-qwen2", new HuggingFaceImportOptions { Layers = [0, 1] }));
        Assert.Equal(ErrorCode.InvalidArgument, mixed.Code);
        Assert.Contains("sliding window none and layer 1 5", mixed.Message);

        var model = await _client.ImportHuggingFaceAsync(c.Directory, "hf-qwen2", new HuggingFaceImportOptions { Layers = [1, 2] });
        Assert.True(model.Spec.Bias);
        Assert.False(model.Spec.HasOutputBias);
        Assert.Equal(5, model.Spec.Window);
        var oracle = new HfAttentionOracle(d, heads, kvHeads, d / heads, 1 / Math.Sqrt(d / heads), 5, HfAttentionOracle.DefaultInvFreq(1000000, d / heads));
        var x = Input(3, d);
        await AssertLayer("hf-qwen2", 0, x, d, LinearOracle(c, oracle, 1, x), "qwen2 checkpoint layer 1");
        await AssertLayer("hf-qwen2", 1, x, d, LinearOracle(c, oracle, 2, x), "qwen2 checkpoint layer 2");
    }

    [Fact]
    public async Task Mistral_window_olmo_biases_with_linear_scaling_and_phi3_fused_qkv_match_float64_over_both_transports()
    {
        const int d = 32, heads = 4, kvHeads = 2, dh = 8;
        var x = Input(4, d);
        await using var orleans = silo.CreateOrleansClient();

        using (var mistral = new HfCheckpoint(4))
        {
            mistral.Config(new { architectures = new[] { "MistralForCausalLM" }, hidden_size = d, num_attention_heads = heads, num_key_value_heads = kvHeads,
                num_hidden_layers = 1, rope_theta = 10000.0, sliding_window = 4 });
            LinearLayer(mistral, 0, F.F32, d, heads, kvHeads, dh, false, false);
            mistral.Write(shards: 1);
            var model = await orleans.ImportHuggingFaceAsync(mistral.Directory, "hf-mistral");
            Assert.Equal(4, model.Spec.Window);
            await AssertLayer("hf-mistral", 0, x, d,
                LinearOracle(mistral, new HfAttentionOracle(d, heads, kvHeads, dh, 1 / Math.Sqrt(dh), 4, HfAttentionOracle.DefaultInvFreq(10000, dh)), 0, x), "mistral");
        }

        using (var olmo = new HfCheckpoint(5))
        {
            olmo.Config(new { model_type = "olmo", hidden_size = d, num_attention_heads = heads, num_hidden_layers = 1, rope_theta = 10000.0,
                attention_bias = true, clip_qkv = (double?)null, rope_scaling = new { type = "linear", factor = 2.0 } });
            LinearLayer(olmo, 0, F.F16, d, heads, heads, dh, true, true);
            olmo.Write(shards: 2);
            var model = await _client.ImportHuggingFaceAsync(olmo.Directory, "hf-olmo");
            Assert.True(model.Spec.Bias && model.Spec.HasOutputBias);
            var invFreq = HfAttentionOracle.DefaultInvFreq(10000, dh).Select(f => f / 2).ToArray();
            await AssertLayer("hf-olmo", 0, x, d, LinearOracle(olmo, new HfAttentionOracle(d, heads, heads, dh, 1 / Math.Sqrt(dh), 0, invFreq), 0, x), "olmo");
        }

        using (var phi3 = new HfCheckpoint(6))
        {
            phi3.Config(new { model_type = "phi3", hidden_size = d, num_attention_heads = heads, num_key_value_heads = kvHeads, num_hidden_layers = 1,
                rope_theta = 10000.0, sliding_window = (int?)null, rope_scaling = (object?)null });
            phi3.Add("model.layers.0.self_attn.qkv_proj.weight", F.BF16, 0.2, (heads + 2 * kvHeads) * dh, d);
            phi3.Add("model.layers.0.self_attn.o_proj.weight", F.BF16, 0.2, d, heads * dh);
            phi3.Add("model.layers.0.mlp.gate_up_proj.weight", F.BF16, 0.2, 4 * d, d);
            phi3.Write(shards: 1);
            await orleans.ImportHuggingFaceAsync(phi3.Directory, "hf-phi3");
            float[] qkv = phi3["model.layers.0.self_attn.qkv_proj.weight"];
            int q = heads * dh * d, kv = kvHeads * dh * d;
            var expected = new HfAttentionOracle(d, heads, kvHeads, dh, 1 / Math.Sqrt(dh), 0, HfAttentionOracle.DefaultInvFreq(10000, dh))
                .Forward(x, qkv[..q], qkv[q..(q + kv)], qkv[(q + kv)..], phi3["model.layers.0.self_attn.o_proj.weight"], null, null, null, null);
            await AssertLayer("hf-phi3", 0, x, d, expected, "phi3");
        }
    }

    [Fact]
    public async Task An_existing_model_is_filled_only_when_its_spec_is_the_checkpoints()
    {
        using var c = new HfCheckpoint(7);
        c.Config(new { model_type = "llama", hidden_size = 16, num_attention_heads = 2, num_hidden_layers = 1 });
        LinearLayer(c, 0, F.F32, 16, 2, 2, 8, false, false);
        c.Write(shards: 1);
        await _client.ImportHuggingFaceAsync(c.Directory, "hf-again");
        Assert.True((await _client.ImportHuggingFaceAsync(c.Directory, "hf-again")).Ready);

        await _client.CreateModelAsync("hf-other", new AttentionSpec { ModelDim = 16, HeadCount = 2, RopeTheta = 500 });
        var e = await Assert.ThrowsAsync<HeadwiseException>(() => _client.ImportHuggingFaceAsync(c.Directory, "hf-other"));
        Assert.Equal(ErrorCode.AlreadyExists, e.Code);
        Assert.Contains("spec.rope_theta is 500, the checkpoint's is 10000", e.Message);
    }

    public static TheoryData<string, object, string> BadConfigs => new()
    {
        { "unknown", new { model_type = "bert", architectures = new[] { "BertModel" }, hidden_size = 16 }, "model_type 'bert' and architectures [BertModel]" },
        { "olmo2", new { model_type = "olmo2", hidden_size = 16, num_attention_heads = 2, num_hidden_layers = 1 }, "q_norm" },
        { "clip", new { model_type = "olmo", hidden_size = 16, num_attention_heads = 2, num_hidden_layers = 1, clip_qkv = 8.0 }, "clip_qkv is 8" },
        { "yarn", new { model_type = "llama", hidden_size = 16, num_attention_heads = 2, num_hidden_layers = 1, rope_scaling = new { rope_type = "yarn", factor = 4.0 } },
            "rope_scaling.rope_type 'yarn' is not supported" },
        { "no-hidden", new { model_type = "mistral", num_attention_heads = 2, num_hidden_layers = 1 }, "config.json has no 'hidden_size'" },
        { "attention-bias", new { model_type = "llama", hidden_size = 16, num_attention_heads = 2, num_hidden_layers = 1, attention_bias = false },
            "'model.layers.0.self_attn.q_proj.bias' is in the checkpoint, but config.json (model_type 'llama', attention_bias false or absent)" },
        { "rope-parameters", new { model_type = "llama", hidden_size = 16, num_attention_heads = 2, num_hidden_layers = 1,
            rope_parameters = new { rope_type = "dynamic", rope_theta = 10000.0, factor = 2.0 } }, "rope_type 'dynamic' is not supported" },
    };

    [Theory]
    [MemberData(nameof(BadConfigs))]
    public async Task A_config_headwise_cannot_compute_is_refused_by_its_field_and_creates_nothing(string name, object config, string message)
    {
        using var c = new HfCheckpoint(8);
        c.Config(config);
        LinearLayer(c, 0, F.F32, 16, 2, 2, 8, qkvBias: true, outputBias: false);
        c.Write(shards: 1);
        var e = await Assert.ThrowsAsync<HeadwiseException>(() => _client.ImportHuggingFaceAsync(c.Directory, $"hf-bad-{name}"));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains(message, e.Message);
        Assert.Equal(ErrorCode.NotFound, (await Assert.ThrowsAsync<HeadwiseException>(() => _client.GetModelAsync($"hf-bad-{name}"))).Code);
    }

    [Fact]
    public async Task A_missing_shard_a_tensor_missing_from_the_index_and_a_misshaped_fused_qkv_are_named()
    {
        var config = new { model_type = "llama", hidden_size = 16, num_attention_heads = 2, num_hidden_layers = 2 };
        using (var shardless = new HfCheckpoint(9))
        {
            shardless.Config(config);
            for (int l = 0; l < 2; l++) LinearLayer(shardless, l, F.F16, 16, 2, 2, 8, false, false);
            shardless.Write(shards: 2);
            File.Delete(Path.Combine(shardless.Directory, HfCheckpoint.ShardName(1, 2)));
            var e = await Assert.ThrowsAsync<HeadwiseException>(() => _client.ImportHuggingFaceAsync(shardless.Directory, "hf-shardless"));
            Assert.Contains($"shard '{HfCheckpoint.ShardName(1, 2)}'", e.Message);
        }
        using (var unindexed = new HfCheckpoint(10))
        {
            unindexed.Config(config);
            for (int l = 0; l < 2; l++) LinearLayer(unindexed, l, F.F16, 16, 2, 2, 8, false, false);
            unindexed.Write(shards: 2, leftOutOfIndex: ["model.layers.1.self_attn.k_proj.weight"]);
            var e = await Assert.ThrowsAsync<HeadwiseException>(() => _client.ImportHuggingFaceAsync(unindexed.Directory, "hf-unindexed"));
            Assert.Contains("tensor 'model.layers.1.self_attn.k_proj.weight' is not in model.safetensors.index.json's weight_map", e.Message);
            // Only the chosen layers are looked for: layer 0 alone imports.
            Assert.True((await _client.ImportHuggingFaceAsync(unindexed.Directory, "hf-unindexed", new HuggingFaceImportOptions { Layers = [0] })).Ready);
        }
        using (var fused = new HfCheckpoint(11))
        {
            fused.Config(new { model_type = "phi3", hidden_size = 16, num_attention_heads = 2, num_key_value_heads = 1, num_hidden_layers = 1 });
            fused.Add("model.layers.0.self_attn.qkv_proj.weight", F.F32, 0.2, 3 * 8, 16);   // written for 2 kv heads: (2 + 2·1)·8 = 32 rows expected
            fused.Add("model.layers.0.self_attn.o_proj.weight", F.F32, 0.2, 16, 16);
            fused.Write(shards: 1);
            var e = await Assert.ThrowsAsync<HeadwiseException>(() => _client.ImportHuggingFaceAsync(fused.Directory, "hf-fused"));
            Assert.Contains("tensor 'model.layers.0.self_attn.qkv_proj.weight' has shape [24, 16]", e.Message);
            Assert.Contains("expects [32, 16]", e.Message);
        }
        foreach (string model in new[] { "hf-shardless", "hf-fused" })
            Assert.Equal(ErrorCode.NotFound, (await Assert.ThrowsAsync<HeadwiseException>(() => _client.GetModelAsync(model))).Code);
    }
}
