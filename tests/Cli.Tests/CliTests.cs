using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Headwise.Contracts;

namespace Headwise.Cli.Tests;

/// <summary>The <c>headwise</c> commands against a real embedded silo, run in-process.</summary>
[Collection(SiloCollection.Name)]
public sealed class CliTests(SiloFixture silo) : IDisposable
{
    private const string Prefix = "h.{layer}.attn.";
    private readonly string _directory = Directory.CreateTempSubdirectory("headwise-cli-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private Task<CliRun> Run(params string[] args) => CliRun.RunAsync([.. args, "--server", silo.Server]);

    [Fact]
    public async Task Forward_on_the_demo_model_prints_one_row_per_head_and_a_trace_id()
    {
        var run = await Run("forward", "--model", "demo", "--tokens", "16", "--causal");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("", run.Error);
        var rows = run.Rows(6);
        Assert.Equal(Enumerable.Range(0, 12), rows.Select(r => int.Parse(r[0])).Order());
        Assert.All(rows, row => Assert.Equal(row[0], row[1])); // MHA: group g is query head g
        Assert.All(rows, row => Assert.False(string.IsNullOrEmpty(row[2]))); // silo
        Assert.Matches("^[0-9a-f]{32}$", run.Field("trace id"));
        Assert.Matches(@"^\d+\.\d+ ms$", run.Field("round trip"));
        Assert.Equal("[1, 16, 768]", run.Field("output"));
        Assert.StartsWith("partial sums", run.Field("W_O")); // one silo: its heads' share of W_O is the whole of it
    }

    [Fact]
    public async Task Models_lists_the_demo_model()
    {
        var run = await Run("models");

        Assert.True(run.ExitCode == 0, run.ToString());
        var demo = run.Out.Split('\n').Select(line => line.Split('│', '|').Select(c => c.Trim()).ToArray())
            .Single(cells => cells.Length > 1 && cells[1] == "demo");
        Assert.Equal(["demo", "1", "768", "12", "12", "64", "yes"], demo[1..^1]);
    }

    [Fact]
    public async Task Get_shows_the_spec_and_where_each_head_group_runs()
    {
        var run = await Run("get", "demo");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("768", run.Field("model_dim"));
        Assert.Equal("yes", run.Field("ready"));
        Assert.Equal(Enumerable.Range(0, 12), run.Rows(4).Select(r => int.Parse(r[1])).Order());
    }

    [Fact]
    public async Task Create_import_forward_matches_a_float64_reference_of_the_gpt2_checkpoint()
    {
        var spec = new AttentionSpec { ModelDim = 32, HeadCount = 4, LayerCount = 2, Bias = true };
        string model = UniqueName();
        string weights = WriteWeights(spec, seed: 7);

        var created = await Run("create", model, "--model-dim", "32", "--heads", "4", "--layers", "2", "--bias");
        Assert.True(created.ExitCode == 0, created.ToString());
        Assert.StartsWith("no", created.Field("ready"));
        var imported = await Run("import", weights, "--model", model, "--layout", "gpt2", "--prefix", Prefix);
        Assert.True(imported.ExitCode == 0, imported.ToString());
        Assert.Equal("yes", imported.Field("ready"));

        // Two sequences of 5 tokens; the second has 3 valid ones.
        const int batch = 2, tokens = 5, d = 32;
        float[] x = RandomValues(batch * tokens * d, seed: 3);
        int[] lengths = [5, 3];
        string input = Path.Combine(_directory, "input.safetensors");
        WriteFile(input,
            SafetensorsEntry.F32("input", x, batch, tokens, d),
            new SafetensorsEntry("lengths", SafetensorsDType.I32, [batch], MemoryMarshal.AsBytes(lengths.AsSpan()).ToArray()));
        string output = Path.Combine(_directory, "out.safetensors");

        var forward = await Run("forward", "--model", model, "--layer", "1", "--input", input, "--causal", "--out", output);

        Assert.True(forward.ExitCode == 0, forward.ToString());
        Assert.Equal(Enumerable.Range(0, 4), forward.Rows(6).Select(r => int.Parse(r[0])).Order());
        var written = await SafetensorsFile.ReadAsync(output);
        Assert.Equal([batch, tokens, d], written.Get("output").Shape);
        Assert.Equal(x, written.Get("input").ToFloat32());
        Assert.Equal(lengths, written.Get("lengths").ToInt32());
        double[] expected = await ReferenceAsync(weights, layer: 1, x, batch, tokens, spec, causal: true, lengths);
        AssertClose(expected, written.Get("output").ToFloat32(), 1e-4);
    }

    [Fact]
    public async Task Forward_reads_a_bf16_input_and_runs_without_a_mask()
    {
        var spec = new AttentionSpec { ModelDim = 16, HeadCount = 2, LayerCount = 1, Bias = true };
        string model = UniqueName();
        string weights = WriteWeights(spec, seed: 11);
        Assert.Equal(0, (await Run("create", model, "--model-dim", "16", "--heads", "2", "--bias")).ExitCode);
        Assert.Equal(0, (await Run("import", weights, "--model", model, "--layout", "gpt2", "--prefix", Prefix)).ExitCode);

        // [T, D] in bf16: the CLI reads it as one sequence; the reference sees the same rounded values.
        const int tokens = 6, d = 16;
        ushort[] bf16 = RandomValues(tokens * d, seed: 5).Select(v => (ushort)(BitConverter.SingleToInt32Bits(v) >>> 16)).ToArray();
        float[] x = bf16.Select(bits => BitConverter.Int32BitsToSingle(bits << 16)).ToArray();
        string input = Path.Combine(_directory, "input-bf16.safetensors");
        WriteFile(input, new SafetensorsEntry("input", SafetensorsDType.BF16, [tokens, d], MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray()));
        string output = Path.Combine(_directory, "out-bf16.safetensors");

        var forward = await Run("forward", "--model", model, "--input", input, "--out", output);

        Assert.True(forward.ExitCode == 0, forward.ToString());
        var written = await SafetensorsFile.ReadAsync(output);
        Assert.Equal([1, tokens, d], written.Get("output").Shape);
        double[] expected = await ReferenceAsync(weights, layer: 0, x, 1, tokens, spec, causal: false, lengths: null);
        AssertClose(expected, written.Get("output").ToFloat32(), 1e-4);
    }

    [Fact]
    public async Task Import_of_a_linear_gqa_checkpoint_uses_the_default_prefix_and_forward_shows_the_groups()
    {
        var spec = new AttentionSpec { ModelDim = 32, HeadCount = 8, KvHeadCount = 2, LayerCount = 2 }.Resolve();
        string model = UniqueName();
        var entries = WeightExporter.Export(SeededWeights.Create(spec, 13), spec, WeightLayout.Linear, "model.layers.{layer}.self_attn.");
        string weights = Path.Combine(_directory, "linear.safetensors");
        WriteFile(weights, [.. entries]);
        Assert.Equal(0, (await Run("create", model, "--model-dim", "32", "--heads", "8", "--kv-heads", "2", "--layers", "2")).ExitCode);

        var imported = await Run("import", weights, "--model", model, "--layout", "linear");
        var forward = await Run("forward", "--model", model, "--layer", "1", "--tokens", "7", "--seed", "1", "--batch", "3");

        Assert.True(imported.ExitCode == 0, imported.ToString());
        Assert.Equal("yes", imported.Field("ready"));
        Assert.True(forward.ExitCode == 0, forward.ToString());
        Assert.Equal([["0", "0-3"], ["1", "4-7"]], forward.Rows(6).Select(r => r[..2]).OrderBy(r => r[0]));
        Assert.Equal("[3, 7, 32]", forward.Field("output"));
    }

    [Fact]
    public async Task Delete_removes_the_model()
    {
        string model = UniqueName();
        Assert.Equal(0, (await Run("create", model, "--model-dim", "8", "--heads", "2")).ExitCode);

        var deleted = await Run("delete", model);
        var get = await Run("get", model);

        Assert.True(deleted.ExitCode == 0, deleted.ToString());
        Assert.Equal(1, get.ExitCode);
        Assert.Contains("NOT_FOUND", get.Error);
    }

    [Fact]
    public async Task An_unknown_model_is_one_line_on_stderr_with_NOT_FOUND_and_exit_1()
    {
        var run = await Run("forward", "--model", "no-such-model", "--tokens", "4");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal("", run.Out);
        AssertOneErrorLine(run);
        Assert.Equal("error: NOT_FOUND: model 'no-such-model' not found.", run.Error.Trim());
    }

    [Fact]
    public async Task Creating_an_existing_model_is_ALREADY_EXISTS()
    {
        var run = await Run("create", "demo", "--model-dim", "768", "--heads", "12");

        Assert.Equal(1, run.ExitCode);
        AssertOneErrorLine(run);
        Assert.StartsWith("error: ALREADY_EXISTS: ", run.Error);
    }

    [Fact]
    public async Task A_missing_weights_file_is_a_usage_error()
    {
        var run = await Run("import", Path.Combine(_directory, "missing.safetensors"), "--model", "demo", "--layout", "gpt2");

        Assert.Equal(2, run.ExitCode);
        AssertOneErrorLine(run);
        Assert.Contains("not found", run.Error);
    }

    [Fact]
    public async Task Reading_the_server_from_HEADWISE_SERVER()
    {
        string? before = Environment.GetEnvironmentVariable("HEADWISE_SERVER");
        Environment.SetEnvironmentVariable("HEADWISE_SERVER", silo.Server);
        try
        {
            var run = await CliRun.RunAsync("models");
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Contains("demo", run.Out);
        }
        finally
        {
            Environment.SetEnvironmentVariable("HEADWISE_SERVER", before);
        }
    }

    internal static void AssertOneErrorLine(CliRun run)
    {
        Assert.EndsWith(Environment.NewLine, run.Error);
        Assert.DoesNotContain('\n', run.Error.TrimEnd());
        Assert.StartsWith("error: ", run.Error);
        Assert.DoesNotMatch(@"\bat [\w.]+\(", run.Error); // no stack trace
    }

    private static string UniqueName() => "cli-" + Guid.NewGuid().ToString("N")[..8];

    private string WriteWeights(AttentionSpec spec, int seed)
    {
        var resolved = spec.Resolve();
        var entries = WeightExporter.Export(SeededWeights.Create(resolved, seed), resolved, WeightLayout.Gpt2, Prefix);
        string path = Path.Combine(_directory, $"weights-{seed}.safetensors");
        WriteFile(path, [.. entries]);
        return path;
    }

    private static void WriteFile(string path, params SafetensorsEntry[] entries)
    {
        using var stream = File.Create(path);
        SafetensorsWriter.Write(stream, entries);
    }

    private static float[] RandomValues(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
    }

    private static async Task<double[]> ReferenceAsync(string weights, int layer, float[] x, int batch, int tokens,
        AttentionSpec spec, bool causal, int[]? lengths)
    {
        var file = await SafetensorsFile.ReadAsync(weights);
        float[] Tensor(string suffix) => file.Get($"h.{layer}.attn.{suffix}").ToFloat32();
        return NaiveGpt2Attention.Forward(x, batch, tokens, spec.ModelDim, spec.HeadCount,
            Tensor("c_attn.weight"), Tensor("c_attn.bias"), Tensor("c_proj.weight"), Tensor("c_proj.bias"), causal, lengths);
    }

    private static void AssertClose(double[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxDifference = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(maxDifference <= tolerance, $"max abs difference {maxDifference:E2} > {tolerance:E0}");
        Assert.True(expected.Max(Math.Abs) > 1e-3, "the reference output is all but zero; the check would be vacuous");
    }
}
