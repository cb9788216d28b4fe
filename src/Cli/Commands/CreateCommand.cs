using System.CommandLine;
using Headwise.Contracts;
using Spectre.Console;

namespace Headwise.Cli.Commands;

/// <summary>
/// <c>headwise create NAME --model-dim D --heads H [...]</c>: registers a model. The spec is checked here with
/// the server's own rule first, so a bad number is a usage error that names its option.
/// </summary>
internal static class CreateCommand
{
    public static Command Create(ServerOption server, IAnsiConsole console)
    {
        var name = new Argument<string>("NAME") { Description = "name of the new model (letters, digits, '.', '_', '-')" }.ValidatedAsModelName();
        var modelDim = new Option<int>("--model-dim") { Description = "D: width of a token's row", Required = true, HelpName = "D" };
        var heads = new Option<int>("--heads") { Description = "Hq: query heads per layer", Required = true, HelpName = "H" };
        var kvHeads = new Option<int>("--kv-heads") { Description = "Hkv: key/value heads (GQA); must divide --heads [default: --heads]", HelpName = "K" };
        var headDim = new Option<int>("--head-dim") { Description = "dh: width of one head [default: D / H]", HelpName = "DH" };
        var layers = new Option<int>("--layers") { Description = "number of attention layers", HelpName = "L", DefaultValueFactory = _ => 1 };
        var bias = new Option<bool>("--bias") { Description = "the Q, K, V and output projections have biases" };
        var window = new Option<int>("--window") { Description = "sliding window: query i sees keys j > i - W [default: none]", HelpName = "W" };
        var scale = new Option<float>("--scale") { Description = "multiplies Q·Kᵀ [default: 1/sqrt(dh)]", HelpName = "S" };
        var ropeTheta = new Option<float>("--rope-theta") { Description = "RoPE base θ, e.g. 10000 (HF rotate-half, as Llama/OLMo) [default: no RoPE]", HelpName = "THETA" };
        var ropeDim = new Option<int>("--rope-dim") { Description = "leading dims of each head RoPE rotates [default: dh]", HelpName = "R" };

        var command = new Command("create", "Create a model; upload its weights afterwards with 'headwise import'.")
        {
            name, modelDim, heads, kvHeads, headDim, layers, bias, window, scale, ropeTheta, ropeDim,
        };

        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var spec = new AttentionSpec
            {
                ModelDim = parseResult.GetValue(modelDim),
                HeadCount = parseResult.GetValue(heads),
                KvHeadCount = parseResult.GetValue(kvHeads),
                HeadDim = parseResult.GetValue(headDim),
                LayerCount = parseResult.GetValue(layers),
                Bias = parseResult.GetValue(bias),
                Window = parseResult.GetValue(window),
                Scale = parseResult.GetValue(scale),
                RopeTheta = parseResult.GetValue(ropeTheta),
                RopeDim = parseResult.GetValue(ropeDim),
            };
            try
            {
                spec.Resolve();
            }
            catch (HeadwiseException exception)
            {
                throw new UsageException(OptionNames(exception.Message), exception);
            }
            await using var client = server.Connect(parseResult);
            var model = await client.CreateModelAsync(parseResult.GetRequiredValue(name), spec, cancellationToken);
            console.WriteLine($"created model '{model.Name}'.");
            ModelViews.WriteModel(console, model);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The spec's field names in a message, spelled as this command's options.</summary>
    private static string OptionNames(string message) => message
        .Replace("spec.model_dim", "--model-dim", StringComparison.Ordinal)
        .Replace("spec.kv_head_count", "--kv-heads", StringComparison.Ordinal)
        .Replace("spec.head_count", "--heads", StringComparison.Ordinal)
        .Replace("spec.head_dim", "--head-dim", StringComparison.Ordinal)
        .Replace("spec.layer_count", "--layers", StringComparison.Ordinal)
        .Replace("spec.scale", "--scale", StringComparison.Ordinal)
        .Replace("spec.window", "--window", StringComparison.Ordinal)
        .Replace("spec.rope_theta", "--rope-theta", StringComparison.Ordinal)
        .Replace("spec.rope_dim", "--rope-dim", StringComparison.Ordinal);
}
