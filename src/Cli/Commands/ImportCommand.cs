using System.CommandLine;
using System.Diagnostics;
using Headwise.Client;
using Headwise.Contracts;
using Spectre.Console;

namespace Headwise.Cli.Commands;

/// <summary>
/// <c>headwise import FILE.safetensors --model NAME --layout gpt2|linear [--prefix P]</c>: uploads the weights of
/// every layer of a model in one atomic call; the model is ready afterwards.
/// </summary>
internal static class ImportCommand
{
    /// <summary>Tensor name prefixes of the usual checkpoints, used when --prefix is not given.</summary>
    public const string Gpt2Prefix = "h.{layer}.attn.";
    public const string LinearPrefix = "model.layers.{layer}.self_attn.";

    public static Command Create(ServerOption server, IAnsiConsole console)
    {
        var file = new Argument<string>("FILE") { Description = "safetensors file holding the attention weights of every layer" };
        var model = new Option<string>("--model") { Description = "the model to upload to (create it first)", Required = true, HelpName = "NAME" }
            .ValidatedAsModelName();
        var layout = new Option<string>("--layout")
        {
            Description = "gpt2: Conv1D c_attn [D, 3D] and c_proj [D, D]; linear: torch Linear q_proj, k_proj, v_proj, o_proj",
            Required = true,
        };
        layout.AcceptOnlyFromAmong("gpt2", "linear");
        var prefix = new Option<string>("--prefix")
        {
            Description = $"tensor name prefix, {{layer}} standing for the layer index [default: '{Gpt2Prefix}' for gpt2, '{LinearPrefix}' for linear]",
            HelpName = "P",
        };

        var command = new Command("import", "Upload a model's weights from a safetensors file.") { file, model, layout, prefix };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            string path = parseResult.GetRequiredValue(file);
            if (!File.Exists(path))
                throw new UsageException($"file '{path}' not found.");
            var weightLayout = parseResult.GetRequiredValue(layout) == "linear" ? WeightLayout.Linear : WeightLayout.Gpt2;
            string tensorPrefix = parseResult.GetValue(prefix) ?? (weightLayout == WeightLayout.Gpt2 ? Gpt2Prefix : LinearPrefix);

            await using var client = server.Connect(parseResult);
            var stopwatch = Stopwatch.StartNew();
            var description = await client.UploadWeightsAsync(parseResult.GetRequiredValue(model), path, weightLayout, tensorPrefix, cancellationToken);
            stopwatch.Stop();
            long bytes = new FileInfo(path).Length;
            console.WriteLine($"uploaded {path} ({bytes / (1024.0 * 1024.0):F1} MiB, prefix '{tensorPrefix}') to model '{description.Name}' in {stopwatch.Elapsed.TotalSeconds:F2} s.");
            ModelViews.WriteModel(console, description);
            return ExitCodes.Ok;
        });
        return command;
    }
}
