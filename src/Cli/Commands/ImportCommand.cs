using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Headwise.Client;
using Headwise.Contracts;
using Spectre.Console;

namespace Headwise.Cli.Commands;

/// <summary>
/// <c>headwise import FILE.safetensors --model NAME --layout gpt2|linear [--prefix P]</c>: uploads the weights of
/// every layer of a model in one atomic call; the model is ready afterwards.
/// <c>headwise import --hf DIR --model NAME [--layers 0,3-5]</c>: creates the model from a Hugging Face checkpoint's
/// config.json and uploads the chosen layers' attention tensors, with a progress bar (plain lines when redirected).
/// </summary>
internal static class ImportCommand
{
    /// <summary>Tensor name prefixes of the usual checkpoints, used when --prefix is not given.</summary>
    public const string Gpt2Prefix = "h.{layer}.attn.";
    public const string LinearPrefix = "model.layers.{layer}.self_attn.";

    public static Command Create(ServerOption server, IAnsiConsole console)
    {
        var file = new Argument<string?>("FILE") { Description = "safetensors file holding the attention weights of every layer", Arity = ArgumentArity.ZeroOrOne };
        var model = new Option<string>("--model") { Description = "the model to upload to (with FILE: create it first; with --hf: created if missing)", Required = true, HelpName = "NAME" }
            .ValidatedAsModelName();
        var layout = new Option<string>("--layout")
        {
            Description = "with FILE: gpt2: Conv1D c_attn [D, 3D] and c_proj [D, D]; linear: torch Linear q_proj, k_proj, v_proj, o_proj",
        };
        layout.AcceptOnlyFromAmong("gpt2", "linear");
        var prefix = new Option<string>("--prefix")
        {
            Description = $"with FILE: tensor name prefix, {{layer}} standing for the layer index [default: '{Gpt2Prefix}' for gpt2, '{LinearPrefix}' for linear]",
            HelpName = "P",
        };
        var hf = new Option<string>("--hf")
        {
            Description = "a Hugging Face checkpoint directory (config.json, model.safetensors or model.safetensors.index.json and its shards): " +
                "GPT-2, Llama, Mistral, Qwen2, OLMo, Phi-3",
            HelpName = "DIR",
        };
        var layers = new Option<string>("--layers")
        {
            Description = "with --hf: the checkpoint's layers to import, e.g. 0,3-5; the model holds them renumbered 0..n-1 [default: all]",
            HelpName = "LIST",
        };

        var command = new Command("import", "Upload a model's weights from a safetensors file, or import a Hugging Face checkpoint's attention.")
        {
            file, model, layout, prefix, hf, layers,
        };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            string? path = parseResult.GetValue(file), directory = parseResult.GetValue(hf);
            if ((path is null) == (directory is null))
                throw new UsageException("give either FILE (with --layout) or --hf DIR.");
            string name = parseResult.GetRequiredValue(model);
            if (directory is not null)
            {
                if (parseResult.GetValue(layout) is not null || parseResult.GetValue(prefix) is not null)
                    throw new UsageException("--layout and --prefix go with FILE; --hf reads the layout from config.json.");
                if (!Directory.Exists(directory))
                    throw new UsageException($"directory '{directory}' not found.");
                var options = new HuggingFaceImportOptions { Layers = ParseLayers(parseResult.GetValue(layers)) };
                await using var hfClient = server.Connect(parseResult);
                return await ImportCheckpoint(console, hfClient, directory, name, options, cancellationToken);
            }

            if (parseResult.GetValue(layers) is not null)
                throw new UsageException("--layers goes with --hf.");
            if (!File.Exists(path))
                throw new UsageException($"file '{path}' not found.");
            string layoutName = parseResult.GetValue(layout) ?? throw new UsageException("--layout is required with FILE (gpt2 or linear).");
            var weightLayout = layoutName == "linear" ? WeightLayout.Linear : WeightLayout.Gpt2;
            string tensorPrefix = parseResult.GetValue(prefix) ?? (weightLayout == WeightLayout.Gpt2 ? Gpt2Prefix : LinearPrefix);

            await using var client = server.Connect(parseResult);
            var stopwatch = Stopwatch.StartNew();
            var description = await client.UploadWeightsAsync(name, path!, weightLayout, tensorPrefix, cancellationToken);
            stopwatch.Stop();
            long bytes = new FileInfo(path!).Length;
            console.WriteLine($"uploaded {path} ({bytes / (1024.0 * 1024.0):F1} MiB, prefix '{tensorPrefix}') to model '{description.Name}' in {stopwatch.Elapsed.TotalSeconds:F2} s.");
            ModelViews.WriteModel(console, description);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static async Task<int> ImportCheckpoint(IAnsiConsole console, IAttentionClient client, string directory, string name,
        HuggingFaceImportOptions options, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        ImportProgress? last = null;
        ModelDescription description;
        if (console.Profile.Capabilities.Interactive)
        {
            description = null!;
            await console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .StartAsync(async context =>
                {
                    var bytes = context.AddTask("attention", maxValue: 1);
                    var layers = context.AddTask("layers", maxValue: 1);
                    var progress = new InlineProgress(p =>
                    {
                        last = p;
                        bytes.MaxValue = Math.Max(1, p.TotalBytes);
                        bytes.Value = p.BytesSent;
                        bytes.Description = $"{MiB(p.BytesSent)} / {MiB(p.TotalBytes)} MiB";
                        layers.MaxValue = Math.Max(1, p.TotalLayers);
                        layers.Value = p.LayersDone;
                        layers.Description = $"layers {p.LayersDone}/{p.TotalLayers}";
                    });
                    description = await client.ImportHuggingFaceAsync(directory, name, options, progress, cancellationToken);
                });
        }
        else
        {
            // Redirected: one line per layer handed to the upload, nothing that redraws.
            int linesFor = 0;
            var progress = new InlineProgress(p =>
            {
                last = p;
                if (p.LayersDone == linesFor) return;
                linesFor = p.LayersDone;
                console.WriteLine($"sent layer {p.LayersDone}/{p.TotalLayers} ({MiB(p.BytesSent)} of {MiB(p.TotalBytes)} MiB)");
            });
            description = await client.ImportHuggingFaceAsync(directory, name, options, progress, cancellationToken);
        }
        stopwatch.Stop();
        console.WriteLine($"imported {directory} ({description.Spec.LayerCount} layers, {MiB(last?.TotalBytes ?? 0)} MiB of attention weights) " +
            $"to model '{description.Name}' in {stopwatch.Elapsed.TotalSeconds.ToString("F2", CultureInfo.InvariantCulture)} s.");
        ModelViews.WriteModel(console, description);
        return ExitCodes.Ok;
    }

    /// <summary>"0,3-5" → [0, 3, 4, 5]; null stays null (all layers).</summary>
    internal static IReadOnlyList<int>? ParseLayers(string? text)
    {
        if (text is null) return null;
        var layers = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            string[] ends = part.Split('-', StringSplitOptions.TrimEntries);
            if (ends.Length is 1 or 2
                && int.TryParse(ends[0], NumberStyles.None, CultureInfo.InvariantCulture, out int first)
                && int.TryParse(ends[^1], NumberStyles.None, CultureInfo.InvariantCulture, out int last)
                && first <= last)
            {
                for (int layer = first; layer <= last; layer++) layers.Add(layer);
                continue;
            }
            throw new UsageException($"--layers '{text}': '{part}' is not a layer or a range such as 3-5.");
        }
        return layers;
    }

    private static string MiB(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F1", CultureInfo.InvariantCulture);

    /// <summary>Reports on the reporting thread: Progress&lt;T&gt; would post to the thread pool, out of order and after the end.</summary>
    private sealed class InlineProgress(Action<ImportProgress> report) : IProgress<ImportProgress>
    {
        public void Report(ImportProgress value) => report(value);
    }
}
