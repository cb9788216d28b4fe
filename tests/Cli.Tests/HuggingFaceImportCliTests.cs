using System.Text.Json;
using Headwise.Contracts;

namespace Headwise.Cli.Tests;

/// <summary><c>headwise import --hf DIR</c> against a real embedded silo, run in-process with redirected (plain) output.</summary>
[Collection(SiloCollection.Name)]
public sealed class HuggingFaceImportCliTests(SiloFixture silo) : IDisposable
{
    private const int ModelDim = 256, Heads = 4, Layers = 3;
    private readonly string _directory = Directory.CreateTempSubdirectory("headwise-hf-cli-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>A Llama checkpoint of 1 MiB of float32 attention per layer, so the upload reads each layer in its own chunk.</summary>
    private void WriteCheckpoint()
    {
        File.WriteAllText(Path.Combine(_directory, "config.json"), JsonSerializer.Serialize(new
        {
            architectures = new[] { "LlamaForCausalLM" }, model_type = "llama", hidden_size = ModelDim, num_attention_heads = Heads,
            num_hidden_layers = Layers, rope_theta = 10000.0,
        }));
        var random = new Random(3);
        SafetensorsEntry Tensor(string name, params long[] shape) =>
            SafetensorsEntry.F32(name, Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(_ => (float)(random.NextDouble() - 0.5) * 0.1f).ToArray(), shape);
        var tensors = new List<SafetensorsEntry> { Tensor("model.embed_tokens.weight", 64, ModelDim) };
        for (int l = 0; l < Layers; l++)
            foreach (string projection in new[] { "q_proj", "k_proj", "v_proj", "o_proj" })
                tensors.Add(Tensor($"model.layers.{l}.self_attn.{projection}.weight", ModelDim, ModelDim));
        using var file = File.Create(Path.Combine(_directory, "model.safetensors"));
        SafetensorsWriter.Write(file, tensors);
    }

    [Fact]
    public async Task Import_hf_creates_the_model_from_config_json_and_prints_a_line_per_layer_when_redirected()
    {
        WriteCheckpoint();
        var run = await CliRun.RunAsync("import", "--hf", _directory, "--model", "hf-cli", "--layers", "0,2", "--server", silo.Server);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("sent layer 1/2 (", run.Out);
        Assert.Contains("sent layer 2/2 (2.0 of 2.0 MiB)", run.Out);
        Assert.Equal("2", run.Field("layers"));
        Assert.Equal("no", run.Field("bias"));
        Assert.Equal("yes", run.Field("ready"));
        Assert.StartsWith("theta 10000, 64 dims", run.Field("rope"));

        var forward = await CliRun.RunAsync("forward", "--model", "hf-cli", "--layer", "1", "--tokens", "8", "--causal", "--server", silo.Server);
        Assert.True(forward.ExitCode == 0, forward.ToString());
    }

    [Fact]
    public async Task An_unknown_architecture_is_one_error_line_naming_the_fields_and_exit_1()
    {
        File.WriteAllText(Path.Combine(_directory, "config.json"), """{ "model_type": "t5", "architectures": ["T5Model"] }""");
        var run = await CliRun.RunAsync("import", "--hf", _directory, "--model", "hf-cli-t5", "--server", silo.Server);

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.StartsWith("error: INVALID_ARGUMENT: config.json: model_type 't5' and architectures [T5Model] name no architecture", run.Error);
        Assert.Contains("looked for model_type (gpt2, llama, mistral, qwen2, olmo, phi3)", run.Error);
        CliTests.AssertOneErrorLine(run);
    }
}
