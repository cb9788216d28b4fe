using System.Buffers;
using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Kernels;
using Microsoft.Extensions.Options;

namespace Headwise.Grains;

/// <summary>
/// The coordinator of one attention layer. Called by the gRPC gateway and by Orleans clients, it validates a
/// forward pass, scatters X to the layer's <see cref="HeadGrain"/>s in parallel, gathers their Z into one
/// [rows × Hq·dh] buffer and applies W_O, which it assembles from the heads' rows when it activates.
/// </summary>
public sealed class LayerGrain(
    [PersistentState("layer", StorageNames.Weights)] IPersistentState<LayerState> state,
    IHeadKernel kernel,
    IOptions<ForwardLimits> limits) : Grain, ILayerGrain
{
    private float[]? _outputWeights; // W_O: [Hq·dh × D]

    private string Key => this.GetPrimaryKeyString();

    public async Task Initialize(AttentionSpec spec)
    {
        state.State = new LayerState { Spec = spec.Resolve() };
        await state.WriteStateAsync();
        _outputWeights = null;
    }

    public async Task LoadGroup(GroupWeights weights)
    {
        var spec = RequireSpec();
        await Head(weights.Group, spec).Store(spec, weights);
        _outputWeights = null;
        if (state.State.Ready)
        {
            // A re-upload is under way: refuse forwards until CompleteLoad so no answer mixes old and new heads.
            state.State.Ready = false;
            await state.WriteStateAsync();
        }
    }

    public async Task CompleteLoad(byte[]? outputBias)
    {
        var spec = RequireSpec();
        if (spec.Bias && outputBias?.Length != spec.ModelDim * sizeof(float))
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"b_O has {outputBias?.Length ?? 0} bytes; the spec needs {spec.ModelDim} float32 values.");
        _outputWeights = await AssembleOutputWeights(spec);
        state.State.OutputBias = spec.Bias ? outputBias : null;
        state.State.Ready = true;
        await state.WriteStateAsync();
    }

    public async Task<ForwardResult> Forward(ForwardCommand command)
    {
        var spec = await RequireSpecForForward();
        if (!state.State.Ready)
            throw new HeadwiseException(ErrorCode.FailedPrecondition, $"layer '{Key}' has no weights yet; upload the model's weights before Forward.");
        ForwardValidator.Validate(command, spec, limits.Value);

        long started = Stopwatch.GetTimestamp();
        using var activity = HeadwiseTelemetry.Source.StartActivity("headwise.forward");
        activity?.SetTag("headwise.layer", Key);
        activity?.SetTag("headwise.batch", command.Batch);
        activity?.SetTag("headwise.tokens", command.Tokens);
        activity?.SetTag("headwise.groups", spec.GroupCount);

        var outputWeights = _outputWeights ??= await AssembleOutputWeights(spec);
        var outcomes = await ScatterToHeads(command, spec);
        var result = Gather(command, spec, outcomes, outputWeights);
        HeadwiseTelemetry.ForwardMs.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return result;
    }

    public async Task<HeadLocation[]> Locate()
    {
        var spec = RequireSpec();
        int layer = LayerIndex();
        var silos = await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).GetSilo()));
        return silos.Select((silo, group) => new HeadLocation(layer, group, silo)).ToArray();
    }

    public async Task Delete()
    {
        if (state.State.Spec is { } spec)
            await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).Clear()));
        _outputWeights = null;
        await state.ClearStateAsync();
        state.State = new LayerState();
        DeactivateOnIdle();
    }

    private async Task<(HeadOutcome Outcome, double CallMs)[]> ScatterToHeads(ForwardCommand command, AttentionSpec spec)
    {
        // One immutable HeadWork for all heads: in-silo calls share it without a copy.
        var work = new HeadWork
        {
            Batch = command.Batch,
            Tokens = command.Tokens,
            Input = command.Input,
            Causal = command.Causal,
            Lengths = command.Lengths,
            ReturnAttention = command.ReturnAttention,
        };
        return await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(async g =>
        {
            long callStarted = Stopwatch.GetTimestamp();
            var outcome = await Head(g, spec).Attend(work);
            return (outcome, Stopwatch.GetElapsedTime(callStarted).TotalMilliseconds);
        }));
    }

    private ForwardResult Gather(ForwardCommand command, AttentionSpec spec, (HeadOutcome Outcome, double CallMs)[] outcomes, float[] outputWeights)
    {
        int rows = command.Batch * command.Tokens;
        int groupWidth = spec.GroupSize * spec.HeadDim;
        int concatWidth = spec.HeadCount * spec.HeadDim;
        var concat = ArrayPool<float>.Shared.Rent(rows * concatWidth);
        try
        {
            // concat: [rows, Hq·dh]; group g's Z fills columns g·groupWidth..(g+1)·groupWidth.
            for (int g = 0; g < outcomes.Length; g++)
            {
                var z = FloatBytes.AsFloats(outcomes[g].Outcome.Output);
                for (int row = 0; row < rows; row++)
                    z.Slice(row * groupWidth, groupWidth).CopyTo(concat.AsSpan(row * concatWidth + g * groupWidth, groupWidth));
            }

            var output = new byte[rows * spec.ModelDim * sizeof(float)];
            using (HeadwiseTelemetry.Source.StartActivity("headwise.output_projection"))
            {
                var bias = state.State.OutputBias is { } b ? FloatBytes.AsFloats(b) : ReadOnlySpan<float>.Empty;
                kernel.Project(concat.AsSpan(0, rows * concatWidth), rows, concatWidth, outputWeights, spec.ModelDim,
                    bias, FloatBytes.AsFloats(output.AsSpan()));
            }

            return new ForwardResult
            {
                Output = output,
                Heads = outcomes.Select((o, g) => new HeadReport
                {
                    Group = g,
                    Heads = Enumerable.Range(g * spec.GroupSize, spec.GroupSize).ToArray(),
                    Silo = o.Outcome.Silo,
                    Kernel = o.Outcome.Kernel,
                    ComputeMs = o.Outcome.ComputeMs,
                    CallMs = o.CallMs,
                }).ToArray(),
                Attention = command.ReturnAttention ? GatherAttention(command, spec, outcomes) : null,
                HeadOutputs = command.ReturnHeadOutputs ? SplitHeads(concat, command, spec) : null,
                TraceId = Activity.Current?.TraceId.ToString() ?? "",
                ModelDim = spec.ModelDim,
                HeadCount = spec.HeadCount,
                HeadDim = spec.HeadDim,
            };
        }
        finally
        {
            ArrayPool<float>.Shared.Return(concat);
        }
    }

    // [B, Hq, T, T] from each group's [B, g, T, T].
    private static byte[] GatherAttention(ForwardCommand command, AttentionSpec spec, (HeadOutcome Outcome, double CallMs)[] outcomes)
    {
        int block = spec.GroupSize * command.Tokens * command.Tokens;
        var attention = new byte[command.Batch * spec.HeadCount * command.Tokens * command.Tokens * sizeof(float)];
        var destination = FloatBytes.AsFloats(attention.AsSpan());
        for (int g = 0; g < outcomes.Length; g++)
        {
            var source = FloatBytes.AsFloats(outcomes[g].Outcome.Attention);
            for (int b = 0; b < command.Batch; b++)
                source.Slice(b * block, block).CopyTo(destination.Slice((b * spec.GroupCount + g) * block, block));
        }
        return attention;
    }

    // [B, Hq, T, dh] from concat [B·T, Hq·dh].
    private static byte[] SplitHeads(float[] concat, ForwardCommand command, AttentionSpec spec)
    {
        int tokens = command.Tokens, headDim = spec.HeadDim, concatWidth = spec.HeadCount * headDim;
        var headOutputs = new byte[command.Batch * spec.HeadCount * tokens * headDim * sizeof(float)];
        var destination = FloatBytes.AsFloats(headOutputs.AsSpan());
        for (int b = 0; b < command.Batch; b++)
            for (int h = 0; h < spec.HeadCount; h++)
                for (int t = 0; t < tokens; t++)
                    concat.AsSpan((b * tokens + t) * concatWidth + h * headDim, headDim)
                        .CopyTo(destination.Slice(((b * spec.HeadCount + h) * tokens + t) * headDim, headDim));
        return headOutputs;
    }

    private async Task<float[]> AssembleOutputWeights(AttentionSpec spec)
    {
        var blocks = await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).GetOutputRows()));
        var weights = new float[spec.HeadCount * spec.HeadDim * spec.ModelDim];
        int offset = 0;
        foreach (var block in blocks)
        {
            var rows = FloatBytes.AsFloats(block);
            rows.CopyTo(weights.AsSpan(offset));
            offset += rows.Length;
        }
        return weights;
    }

    private AttentionSpec RequireSpec() =>
        state.State.Spec ?? throw new HeadwiseException(ErrorCode.NotFound, $"layer '{Key}' does not exist.");

    // Only on the error path: tell an unknown model from a layer index out of range.
    private async Task<AttentionSpec> RequireSpecForForward()
    {
        if (state.State.Spec is { } spec) return spec;
        var (model, layer) = ParseKey();
        var description = await GrainFactory.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Get(model);
        throw new HeadwiseException(ErrorCode.NotFound,
            $"layer {layer} not found; model '{model}' has layers 0..{description.Spec.LayerCount - 1}.");
    }

    private IHeadGrain Head(int group, AttentionSpec spec)
    {
        if (group < 0 || group >= spec.GroupCount)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"group is {group}; layer '{Key}' has groups 0..{spec.GroupCount - 1}.");
        var (model, layer) = ParseKey();
        return GrainFactory.GetGrain<IHeadGrain>(GrainKeys.Head(model, layer, group));
    }

    private int LayerIndex() => ParseKey().Layer;

    private (string Model, int Layer) ParseKey()
    {
        int slash = Key.LastIndexOf('/');
        return (Key[..slash], int.Parse(Key.AsSpan(slash + 1), System.Globalization.CultureInfo.InvariantCulture));
    }
}
