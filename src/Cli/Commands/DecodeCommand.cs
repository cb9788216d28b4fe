using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Headwise.Client;
using Spectre.Console;

namespace Headwise.Cli.Commands;

/// <summary>
/// <c>headwise decode --model NAME --tokens T [--prefill P] [--chunk C] [--batch B] [--seed S] [--layer L] [--max-tokens M] [--stream] [--check]</c>:
/// opens a decode session, feeds random input (P tokens in one prefill step, then the rest C at a time), closes it,
/// and shows the latency of the steps; <c>--stream</c> sends every step over one DecodeStream and pings it after each
/// step (its no-op floor); <c>--check</c> compares the outputs with one causal Forward over the whole sequence.
/// </summary>
internal static class DecodeCommand
{
    public static Command Create(ServerOption server, IAnsiConsole console)
    {
        var model = new Option<string>("--model") { Description = "the model to run", Required = true, HelpName = "NAME" }.ValidatedAsModelName();
        var layer = new Option<int>("--layer") { Description = "which layer (0-based)", HelpName = "L", DefaultValueFactory = _ => 0 };
        var tokens = new Option<int>("--tokens") { Description = "T: tokens in all, random standard-normal input", Required = true, HelpName = "T" };
        var prefill = new Option<int>("--prefill") { Description = "P: tokens of the first step (a prefill); 0: none", HelpName = "P", DefaultValueFactory = _ => 0 };
        var chunk = new Option<int>("--chunk") { Description = "C: new tokens per step after the prefill", HelpName = "C", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch") { Description = "B: sequences decoded together", HelpName = "B", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "seed of the random input", HelpName = "S", DefaultValueFactory = _ => 0 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "the session's max_tokens; 0: T", HelpName = "M", DefaultValueFactory = _ => 0 };
        var check = new Option<bool>("--check") { Description = "compare with one causal forward pass over all T tokens" };
        var stream = new Option<bool>("--stream") { Description = "send the steps over one stream (DecodeStream) and time its no-op ping after each" };

        var command = new Command("decode", "Decode a random sequence through a session (K/V cached in the head grains) and show per-step latency.")
        {
            model, layer, tokens, prefill, chunk, batch, seed, maxTokens, stream, check,
        };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            string modelName = parseResult.GetRequiredValue(model);
            int layerIndex = parseResult.GetValue(layer), tokenCount = parseResult.GetValue(tokens), prefillCount = parseResult.GetValue(prefill);
            int chunkSize = parseResult.GetValue(chunk), batchSize = parseResult.GetValue(batch);
            int sessionTokens = parseResult.GetValue(maxTokens);
            if (tokenCount < 1) throw new UsageException($"--tokens is {tokenCount}; it must be at least 1.");
            if (prefillCount < 0 || prefillCount > tokenCount) throw new UsageException($"--prefill is {prefillCount}; it must be in 0..{tokenCount} (--tokens).");
            if (chunkSize < 1) throw new UsageException($"--chunk is {chunkSize}; it must be at least 1.");
            if (batchSize < 1) throw new UsageException($"--batch is {batchSize}; it must be at least 1.");
            if (layerIndex < 0) throw new UsageException($"--layer is {layerIndex}; it must be 0 or more.");
            if (sessionTokens < 0) throw new UsageException($"--max-tokens is {sessionTokens}; it must be 0 (same as --tokens) or more.");
            var address = server.Address(parseResult);

            await using var client = server.Connect(parseResult);
            var description = await client.GetModelAsync(modelName, cancellationToken);
            int modelDim = description.Spec.ModelDim;
            var x = ForwardInput.Random(batchSize, tokenCount, modelDim, parseResult.GetValue(seed)).Input;

            var session = await client.OpenSessionAsync(modelName, layerIndex, sessionTokens == 0 ? tokenCount : sessionTokens, cancellationToken);
            var output = new float[batchSize * tokenCount * modelDim];
            var stepMs = new List<double>();
            var pingMs = new List<double>();
            double prefillMs = 0;
            int reprefilled = 0;
            bool streamed = parseResult.GetValue(stream);
            // Opened before the first step: its opening round trip (which checks the session) is not a step's cost.
            var steps = streamed ? await client.OpenDecodeStreamAsync(session.Id, cancellationToken) : null;
            try
            {
                int start = 0;
                while (start < tokenCount)
                {
                    int count = start == 0 && prefillCount > 0 ? prefillCount : Math.Min(chunkSize, tokenCount - start);
                    var step = Slice(x.Data.Span, batchSize, tokenCount, modelDim, start, count);
                    var stopwatch = Stopwatch.StartNew();
                    // The position before the step: a step retried after a lost reply is answered again, not applied twice.
                    var input = new FloatTensor(step, batchSize, count, modelDim);
                    var result = steps is null
                        ? await client.DecodeAsync(session.Id, input, start, cancellationToken)
                        : await steps.StepAsync(input, start, cancellationToken);
                    stopwatch.Stop();
                    if (steps is not null)
                    {
                        // The stream's floor, measured between the steps it is compared with.
                        var ping = Stopwatch.StartNew();
                        await steps.PingAsync(cancellationToken);
                        pingMs.Add(ping.Elapsed.TotalMilliseconds);
                    }
                    if (start == 0 && prefillCount > 0) prefillMs = stopwatch.Elapsed.TotalMilliseconds;
                    else stepMs.Add(stopwatch.Elapsed.TotalMilliseconds);
                    reprefilled += result.ReprefilledGroups;
                    var y = result.Output.Data.Span;
                    for (int b = 0; b < batchSize; b++)
                        y.Slice(b * count * modelDim, count * modelDim).CopyTo(output.AsSpan((b * tokenCount + start) * modelDim));
                    start += count;
                }
            }
            finally
            {
                if (steps is not null) await steps.DisposeAsync();
                await client.CloseSessionAsync(session.Id, CancellationToken.None);
            }

            string Ms(double value) => value.ToString("F3", CultureInfo.InvariantCulture) + " ms";
            var sorted = stepMs.Order().ToArray();
            var fields = new List<(string, string)>
            {
                ("model", $"{modelName}, layer {layerIndex}"),
                ("session", $"{session.Id} (max_tokens {session.MaxTokens}, closed)"),
                ("input", $"{ModelViews.Shape(x.Shape)} random, seed {parseResult.GetValue(seed)}"),
                ("prefill", prefillCount > 0 ? $"{prefillCount} tokens in {Ms(prefillMs)}" : "none"),
                ("steps", sorted.Length == 0 ? "none"
                    : $"{sorted.Length} of {chunkSize} token(s): p50 {Ms(Percentile(sorted, 0.50))}, p99 {Ms(Percentile(sorted, 0.99))}, max {Ms(sorted[^1])}"),
                ("transport", steps is null ? "unary Decode calls" : "one DecodeStream"),
                ("re-filled", $"{reprefilled} head group cache(s)"),
                ("server", address.OriginalString),
            };
            if (pingMs.Count > 0)
            {
                var pings = pingMs.Order().ToArray();
                fields.Insert(fields.FindIndex(field => field.Item1 == "steps") + 1, ("no-op", $"{pings.Length} ping(s) on the stream: p50 {Ms(Percentile(pings, 0.50))}, p99 {Ms(Percentile(pings, 0.99))}"));
            }
            if (parseResult.GetValue(check))
            {
                var forward = await client.ForwardAsync(modelName, new AttentionInput { Input = x, Layer = layerIndex, Causal = true }, cancellationToken);
                double worst = 0;
                var expected = forward.Output.Data.Span;
                for (int i = 0; i < output.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - output[i]));
                fields.Add(("check", $"max abs difference from one causal forward: {worst.ToString("E2", CultureInfo.InvariantCulture)}"));
            }
            ModelViews.WriteFields(console, fields);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Tokens start … start + count − 1 of every sequence: [batch, count, D] from [batch, tokens, D].</summary>
    private static float[] Slice(ReadOnlySpan<float> x, int batch, int tokens, int modelDim, int start, int count)
    {
        var step = new float[batch * count * modelDim];
        for (int b = 0; b < batch; b++)
            x.Slice((b * tokens + start) * modelDim, count * modelDim).CopyTo(step.AsSpan(b * count * modelDim));
        return step;
    }

    private static double Percentile(double[] sorted, double quantile) =>
        sorted[Math.Clamp((int)Math.Ceiling(quantile * sorted.Length) - 1, 0, sorted.Length - 1)];
}
