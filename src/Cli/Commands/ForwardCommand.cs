using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Headwise.Client;
using Headwise.Contracts;
using Spectre.Console;

namespace Headwise.Cli.Commands;

/// <summary>
/// <c>headwise forward --model NAME (--tokens T [--seed S] [--batch B] | --input FILE) [--layer L] [--causal] [--out FILE]</c>:
/// runs one attention layer and shows, per head group, the silo and kernel that computed it and how long it took.
/// (The CLI verb; not Headwise.Contracts.ForwardCommand, the message the coordinator grain receives.)
/// </summary>
internal static class ForwardCommand
{
    public static Command Create(ServerOption server, IAnsiConsole console)
    {
        var model = new Option<string>("--model") { Description = "the model to run", Required = true, HelpName = "NAME" }.ValidatedAsModelName();
        var layer = new Option<int>("--layer") { Description = "which layer (0-based)", HelpName = "L", DefaultValueFactory = _ => 0 };
        var tokens = new Option<int?>("--tokens") { Description = "T: run on random standard-normal input of [B, T, model_dim]", HelpName = "T" };
        var seed = new Option<int>("--seed") { Description = "seed of the random input", HelpName = "S", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch") { Description = "B: sequences of random input", HelpName = "B", DefaultValueFactory = _ => 1 };
        var input = new Option<string>("--input")
        {
            Description = "safetensors file with tensor 'input' [B, T, D] (F32, F16 or BF16) and optional I32 'lengths' [B]",
            HelpName = "FILE",
        };
        var causal = new Option<bool>("--causal") { Description = "query i sees only keys j <= i" };
        var bf16Wire = new Option<bool>("--bf16-wire") { Description = "let X and Z cross between silos as bfloat16 (half the bytes)" };
        var attention = new Option<bool>("--attention") { Description = "ask for the attention weights too (the dashboard draws them as heatmaps)" };
        var output = new Option<string>("--out") { Description = "write a safetensors file with tensors 'output' and 'input'", HelpName = "FILE" };

        var command = new Command("forward", "Run one attention layer of a model and show where each head ran.")
        {
            model, layer, tokens, seed, batch, input, causal, bf16Wire, attention, output,
        };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            string modelName = parseResult.GetRequiredValue(model);
            int layerIndex = parseResult.GetValue(layer);
            int? tokenCount = parseResult.GetValue(tokens);
            string? inputPath = parseResult.GetValue(input);
            string? outputPath = parseResult.GetValue(output);
            bool Given(Option option) => parseResult.GetResult(option) is { Implicit: false };

            if (tokenCount is null == inputPath is null)
                throw new UsageException("give either --tokens T (random input) or --input FILE, not both and not neither.");
            if (inputPath is not null && (Given(seed) || Given(batch)))
                throw new UsageException("--seed and --batch shape the random input of --tokens; with --input the file gives the input.");
            if (tokenCount is < 1)
                throw new UsageException($"--tokens is {tokenCount}; it must be at least 1.");
            if (parseResult.GetValue(batch) < 1)
                throw new UsageException($"--batch is {parseResult.GetValue(batch)}; it must be at least 1.");
            if (layerIndex < 0)
                throw new UsageException($"--layer is {layerIndex}; it must be 0 or more.");
            if (outputPath is not null && Path.GetDirectoryName(Path.GetFullPath(outputPath)) is { } directory && !Directory.Exists(directory))
                throw new UsageException($"--out: directory '{directory}' not found.");
            var address = server.Address(parseResult);

            var x = inputPath is not null ? await ForwardInput.ReadAsync(inputPath, cancellationToken) : null;
            await using var client = server.Connect(parseResult);
            if (x is null)
            {
                var description = await client.GetModelAsync(modelName, cancellationToken);
                x = ForwardInput.Random(parseResult.GetValue(batch), tokenCount!.Value, description.Spec.ModelDim, parseResult.GetValue(seed));
            }

            bool isCausal = parseResult.GetValue(causal);
            var request = new AttentionInput
            {
                Input = x.Input, Layer = layerIndex, Causal = isCausal, Lengths = x.Lengths, Bf16Wire = parseResult.GetValue(bf16Wire),
                ReturnAttention = parseResult.GetValue(attention),
            };
            var stopwatch = Stopwatch.StartNew();
            var result = await client.ForwardAsync(modelName, request, cancellationToken);
            stopwatch.Stop();

            ModelViews.WriteFields(console,
            [
                ("model", $"{modelName}, layer {layerIndex}"),
                ("input", $"{ModelViews.Shape(x.Input.Shape)} {x.Source}"),
                ("mask", Mask(isCausal, x.Lengths)),
            ]);
            console.Write(HeadTable(result.Heads));
            ModelViews.WriteFields(console,
            [
                ("trace id", result.TraceId.Length > 0 ? result.TraceId : "(none)"),
                ("round trip", $"{stopwatch.Elapsed.TotalMilliseconds.ToString("F2", CultureInfo.InvariantCulture)} ms"),
                ("output", ModelViews.Shape(result.Output.Shape)),
                ("traffic", Traffic(result.Silos)),
                ("W_O", result.OutputProjection == OutputProjectionMode.Gathered
                    ? "gathered: the heads' Z went to the coordinator, which applied W_O"
                    : "partial sums: each silo applied its heads' rows of W_O"),
                ("server", address.OriginalString),
            ]);

            if (outputPath is not null)
            {
                WriteResult(outputPath, x, result, modelName, layerIndex, isCausal);
                console.WriteLine($"wrote {outputPath} (output, input{(x.Lengths is null ? "" : ", lengths")}).");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    // Bytes of X sent to and Z received from each silo: where the network cost of a pass goes.
    private static string Traffic(IReadOnlyList<SiloTraffic> silos) =>
        silos.Count == 0
            ? "(none)"
            : string.Join("; ", silos.Select(s => $"{s.Silo}: {s.Groups} groups, sent {s.BytesSent:N0} B, received {s.BytesReceived:N0} B"));

    private static string Mask(bool causal, int[]? lengths)
    {
        var parts = new List<string>();
        if (causal) parts.Add("causal");
        if (lengths is not null) parts.Add($"lengths [{string.Join(", ", lengths)}]");
        return parts.Count == 0 ? "none" : string.Join(", ", parts);
    }

    /// <summary>One row per head group, in group order.</summary>
    private static Table HeadTable(IReadOnlyList<HeadReport> heads)
    {
        var table = new Table()
            .AddColumn(new TableColumn("group").RightAligned())
            .AddColumn("heads")
            .AddColumn("silo")
            .AddColumn("kernel")
            .AddColumn(new TableColumn("compute ms").RightAligned())
            .AddColumn(new TableColumn("call ms").RightAligned());
        foreach (var head in heads.OrderBy(h => h.Group))
        {
            table.AddRow(
                new Text(head.Group.ToString(CultureInfo.InvariantCulture)),
                new Text(ModelViews.HeadList(head.Heads)),
                new Text(head.Silo),
                new Text(head.Kernel),
                new Text(head.ComputeMs.ToString("F3", CultureInfo.InvariantCulture)),
                new Text(head.CallMs.ToString("F3", CultureInfo.InvariantCulture)));
        }
        return table;
    }

    /// <summary>Y as 'output' and X as 'input' (and the lengths), with the request in the metadata.</summary>
    private static void WriteResult(string path, ForwardInput x, AttentionOutput result, string model, int layer, bool causal)
    {
        var entries = new List<SafetensorsEntry>
        {
            SafetensorsEntry.F32("output", result.Output.Data.Span, result.Output.Shape.Select(s => (long)s).ToArray()),
            SafetensorsEntry.F32(ForwardInput.InputTensor, x.Input.Data.Span, x.Input.Shape.Select(s => (long)s).ToArray()),
        };
        if (x.Lengths is { } lengths)
            entries.Add(new SafetensorsEntry(ForwardInput.LengthsTensor, SafetensorsDType.I32, [lengths.Length],
                MemoryMarshal.AsBytes(lengths.AsSpan()).ToArray()));
        var metadata = new Dictionary<string, string>
        {
            ["model"] = model,
            ["layer"] = layer.ToString(CultureInfo.InvariantCulture),
            ["causal"] = causal ? "true" : "false",
            ["trace_id"] = result.TraceId,
        };
        using var stream = File.Create(path);
        SafetensorsWriter.Write(stream, entries, metadata);
    }
}
