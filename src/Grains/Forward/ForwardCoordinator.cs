using System.Buffers;
using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Grains.Decode;
using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;
using Headwise.Kernels;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Forward;

/// <summary>
/// Runs forward passes on the silo the request reached (<see cref="ForwardCoordinatorGrain"/> calls it): validate, batch
/// small forwards that arrive together (<see cref="ForwardBatcher"/>), plan (<see cref="LayerPlans"/>), choose where W_O
/// runs (<see cref="OutputProjectionCost"/>), then the fan-out
/// (<see cref="LayerFanOut"/>) with this silo as the root of the broadcast tree: X leaves for the remote silos before this
/// silo's heads start, each silo answers with one partial sum Σ Z_h·W_O[h rows], and Y = Σ partials + b_O.
/// Every head answers with the version of its weights; a pass that saw a version other than its plan's is run again
/// on a fresh plan, so no answer mixes two uploads.
/// </summary>
public sealed class ForwardCoordinator(
    IGrainFactory grains,
    LayerPlans plans,
    LayerFanOut fanOut,
    SessionProjections projections,
    IHeadKernel kernel,
    SiloIdentity silo,
    SiloSpeedReading speed,
    CancelledForwards cancelled,
    IOptions<ForwardLimits> limits,
    IOptions<ScatterOptions> scatter,
    PassMemoryBudget memory,
    ForwardBatcher batcher)
{
    public async Task<ForwardResult> Forward(string layerKey, ForwardCommand command, CancellationToken cancellationToken)
    {
        var plan = await HeadCallRetry.RunAsync(async () => await plans.Get(layerKey), () => plans.Forget(layerKey), cancellationToken);
        try
        {
            InputValidator.Forward(command, plan.Spec, limits.Value);
        }
        catch (HeadwiseException)
        {
            // The cached plan may belong to a model deleted and created again with another shape: judge by a fresh one.
            plans.Forget(layerKey);
            plan = await plans.Get(layerKey);
            InputValidator.Forward(command, plan.Spec, limits.Value);
        }
        var reserved = await memory.ReserveAsync(
            PassMemoryBudget.Copies * (command.Input.LongLength + InputValidator.ResponseBytes(command, plan.Spec)), cancellationToken);
        // A batched forward's rows stay in its batch's pass after its caller gives up: the batcher releases its memory.
        bool batched = batcher.Takes(command);
        using var releasedHere = batched ? null : reserved;
        using var telemetry = HeadwiseTelemetry.StartForward(layerKey, command, plan.Spec);
        ForwardResult result;
        try
        {
            result = batched
                ? await batcher.Run(layerKey, command, (merged, token) => PassWithReplans(layerKey, merged, token), cancellationToken, reserved)
                : await PassWithReplans(layerKey, command, cancellationToken);
        }
        catch (Exception e) when (telemetry.Failed(e))
        {
            throw; // not reached: the filter records the failure on the span and lets the exception pass
        }
        telemetry.Complete(result);
        return result;
    }

    private async Task<ForwardResult> PassWithReplans(string layerKey, ForwardCommand command, CancellationToken cancellationToken)
    {
        for (int planned = 1; ; planned++)
        {
            try
            {
                return await HeadCallRetry.RunAsync(() => Pass(layerKey, command, cancellationToken), () => plans.Forget(layerKey), cancellationToken);
            }
            catch (StalePlanException) when (planned < MaxPlans)
            {
                // Heads serve weights other than the plan's (an upload switched the model, the model was deleted or
                // created again): plan again; the layer says NotFound or FailedPrecondition if that is what happened.
                plans.Forget(layerKey);
            }
            catch (StalePlanException)
            {
                plans.Forget(layerKey);
                throw new HeadwiseException(ErrorCode.Unavailable, $"the weights of layer '{layerKey}' changed {MaxPlans} times during the pass; retry.");
            }
        }
    }

    // Each upload's switch can make a plan stale once; more than this many switches during one pass is a storm.
    private const int MaxPlans = 4;

    private async Task<ForwardResult> Pass(string layerKey, ForwardCommand command, CancellationToken cancellationToken)
    {
        var plan = await plans.Get(layerKey);
        var spec = plan.Spec;
        // X's values were scanned once in Forward (a batch's, caller by caller); the plan, and so the shape it must fit, may be new.
        InputValidator.ForwardShape(command, spec, limits.Value);
        var mode = ChooseMode(command, plan);
        Activity.Current?.SetTag("headwise.output_projection", mode == OutputProjectionMode.Gathered ? "gathered" : "partial_sums");

        var work = new HeadWork
        {
            Batch = command.Batch,
            Tokens = command.Tokens,
            Input = command.Input,
            Causal = command.Causal,
            Lengths = command.Lengths,
            ReturnAttention = command.ReturnAttention,
            ForwardId = Guid.NewGuid(),
        };
        var wire = command.Bf16Wire ? WireFormat.Bf16 : scatter.Value.WireFormat;
        // Encoded once for every relay: the same immutable buffer goes to each child of the tree.
        var wireWork = wire == WireFormat.Bf16 && plan.HeadSilos.Any(s => s != silo.Name)
            ? work with { Input = Bf16.Encode(FloatBytes.AsFloats(work.Input)), Wire = WireFormat.Bf16 }
            : work;

        var involved = new HashSet<string>(plan.HeadSilos);
        // A token does not reach head work already running: when the caller gives up, every silo of the pass hears it.
        using var callOff = cancellationToken.Register(() =>
        {
            cancelled.Cancel(work.ForwardId);
            string[] targets;
            lock (involved) targets = involved.Where(s => s != silo.Name).ToArray();
            foreach (var target in targets)
                _ = grains.GetGrain<ISiloRelayGrain>(GrainKeys.Relay(target)).Cancel(work.ForwardId);
        });

        // Every silo checks its heads against the plan's versions before computing: a head serving other weights (an
        // upload, a model deleted and created again) refuses, and the pass is planned again.
        var request = new SiloPassRequest { Layer = layerKey, Work = wireWork, Groups = [], Mode = mode, Versions = plan.HeadVersions };
        IReadOnlyList<SiloPassAnswer> answers;
        try
        {
            answers = await fanOut.Run(plan.HeadSilos, request, work.Input, moved =>
            {
                plans.Moved(layerKey, moved);
                lock (involved) involved.UnionWith(moved.Select(m => m.Silo));
            }, cancellationToken);
        }
        catch (HeadwiseException e) when (e.Code is ErrorCode.FailedPrecondition or ErrorCode.NotFound)
        {
            throw new StalePlanException();
        }
        cancellationToken.ThrowIfCancellationRequested();

        var groups = new GroupAnswer[spec.GroupCount];
        var returned = new long[spec.GroupCount];
        foreach (var group in answers.SelectMany(a => a.Groups))
        {
            if (group.Version != plan.HeadVersions[group.Group]) throw new StalePlanException();
            returned[group.Group] = group.Silo == silo.Name ? 0 : (group.Output?.LongLength ?? 0) + (group.Attention?.LongLength ?? 0);
            groups[group.Group] = Widen(group);
        }
        if (groups.Any(g => g is null))
            throw new HeadwiseException(ErrorCode.Internal, $"layer '{layerKey}': a head group went unanswered in the pass.");

        var output = mode == OutputProjectionMode.PartialSums
            ? PartialSums.Add(answers, command.Batch * command.Tokens, spec.ModelDim, plan.OutputBias)
            : await ProjectGathered(layerKey, plan, command, groups);
        return Result(command, plan, mode, groups, returned, answers, output);
    }

    private OutputProjectionMode ChooseMode(ForwardCommand command, LayerPlan plan)
    {
        // Per-head outputs need every Z here; attention comes back per head anyway.
        if (command.ReturnHeadOutputs || command.ReturnAttention) return OutputProjectionMode.Gathered;
        switch (scatter.Value.OutputProjection)
        {
            case OutputProjectionChoice.PartialSums: return OutputProjectionMode.PartialSums;
            case OutputProjectionChoice.Gathered: return OutputProjectionMode.Gathered;
        }
        // A group whose silo is not known yet is tried here first, as the fan-out does.
        var bySilo = plan.HeadSilos.GroupBy(s => s.Length == 0 ? silo.Name : s).ToDictionary(g => g.Key, g => g.Count());
        int own = bySilo.GetValueOrDefault(silo.Name);
        var remote = bySilo.Where(s => s.Key != silo.Name).Select(s => s.Value).ToArray();
        int bytesPerValue = command.Bf16Wire || scatter.Value.WireFormat == WireFormat.Bf16 ? 2 : 4;
        return OutputProjectionCost.Choose(plan.Spec, command.Batch, command.Tokens, own, remote, bytesPerValue,
            ScatterTree.FanoutFor(scatter.Value.TreeFanout, remote.Length, (long)command.Batch * command.Tokens * plan.Spec.ModelDim * sizeof(float)),
            scatter.Value.LinkBytesPerSecond, speed.Gflops).Mode;
    }

    // Y = Concat(Z)·W_O + b_O here, with the layer's W_O shared by this silo's coordinators and sessions.
    private async Task<byte[]> ProjectGathered(string layerKey, LayerPlan plan, ForwardCommand command, GroupAnswer[] groups)
    {
        var projection = plan.Projection;
        if (projection is null)
        {
            // Fetched once per plan (W_O is 2.4 MB for GPT-2 small, 64 MB for a 4096-wide layer), not once per pass.
            var (model, layer) = HeadwiseTelemetry.SplitKey(layerKey);
            projection = (await projections.Fetch(grains, model, layer)).Shared;
            plans.Attach(layerKey, plan, projection);
        }
        if (!projection.HeadVersions.AsSpan().SequenceEqual(plan.HeadVersions)) throw new StalePlanException();
        var spec = plan.Spec;
        int rows = command.Batch * command.Tokens, concatWidth = spec.HeadCount * spec.HeadDim;
        var concat = ArrayPool<float>.Shared.Rent(rows * concatWidth);
        try
        {
            var concatenated = concat.AsSpan(0, rows * concatWidth);
            HeadGather.Concatenate(groups, rows, spec, concatenated);
            var output = new byte[rows * spec.ModelDim * sizeof(float)];
            using (HeadwiseTelemetry.StartOutputProjection(rows, concatWidth, spec.ModelDim))
                kernel.Project(concatenated, rows, concatWidth, projection.OutputWeights, spec.ModelDim, projection.OutputBias,
                    FloatBytes.AsFloats(output.AsSpan()));
            return output;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(concat);
        }
    }

    private static ForwardResult Result(ForwardCommand command, LayerPlan plan, OutputProjectionMode mode, GroupAnswer[] groups,
        long[] returned, IReadOnlyList<SiloPassAnswer> answers, byte[] output)
    {
        var spec = plan.Spec;
        var traffic = answers.SelectMany(a => a.Traffic)
            .GroupBy(t => t.Silo)
            .Select(t => new SiloTraffic
            {
                Silo = t.Key,
                Groups = t.Sum(x => x.Groups),
                BytesSent = t.Sum(x => x.BytesSent),
                BytesReceived = t.Sum(x => x.BytesReceived),
            })
            .Where(t => t.Groups > 0 || t.BytesSent > 0)
            .OrderBy(t => t.Silo, StringComparer.Ordinal).ToArray();
        var bytesBySilo = traffic.ToDictionary(t => t.Silo);
        return new ForwardResult
        {
            Output = output,
            Heads = groups.Select(g => new HeadReport
            {
                Group = g.Group,
                Heads = Enumerable.Range(g.Group * spec.GroupSize, spec.GroupSize).ToArray(),
                Silo = g.Silo,
                Kernel = g.Kernel,
                ComputeMs = g.ComputeMs,
                CallMs = g.CallMs > 0 ? g.CallMs : g.QueueMs + g.ComputeMs,
                InputBytes = bytesBySilo.TryGetValue(g.Silo, out var t) ? t.BytesSent : 0,
                OutputBytes = returned[g.Group],
                Pieces = g.Pieces,
            }).ToArray(),
            Silos = traffic,
            Attention = command.ReturnAttention ? HeadGather.Attention(groups, command.Batch, command.Tokens, spec) : null,
            HeadOutputs = command.ReturnHeadOutputs ? HeadGather.SplitHeads(groups, command.Batch, command.Tokens, spec) : null,
            TraceId = Activity.Current?.TraceId.ToString() ?? "",
            ModelDim = spec.ModelDim,
            HeadCount = spec.HeadCount,
            HeadDim = spec.HeadDim,
            OutputProjection = mode,
        };
    }

    // Remote Z comes back in the wire format; this silo's own is float32.
    private static GroupAnswer Widen(GroupAnswer group) =>
        group.Wire == WireFormat.Bf16 && group.Output is { } z
            ? group with { Output = Bf16.DecodeToFloatBytes(z), Wire = WireFormat.F32 }
            : group;

    /// <summary>A head answered from weights other than the plan's.</summary>
    private sealed class StalePlanException() : Exception("the layer's weights changed since it was planned");
}
