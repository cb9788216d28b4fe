using System.Buffers;
using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Placement;
using Headwise.Kernels;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Headwise.Grains;

/// <summary>
/// The coordinator of one attention layer. Called by the gRPC gateway and by Orleans clients, it validates a
/// forward pass, scatters X to the layer's <see cref="HeadGrain"/>s (<see cref="HeadScatter"/>), gathers their Z
/// into one [rows × Hq·dh] buffer (<see cref="HeadGather"/>) and applies W_O, which it assembles from the heads'
/// rows. It also moves its heads when the silo set changed (<see cref="Rebalance"/>).
/// </summary>
public sealed class LayerGrain(
    [PersistentState("layer", StorageNames.Weights)] IPersistentState<LayerState> state,
    IHeadKernel kernel,
    SiloIdentity silo,
    IClusterMembershipService membership,
    IServiceProvider services,
    IOptions<ForwardLimits> limits,
    IOptions<ScatterOptions> scatter) : Grain, ILayerGrain
{
    private float[]? _outputWeights; // W_O: [Hq·dh × D]
    private Guid[] _headVersions = []; // per group, the weights version its rows of W_O came from
    private string[]? _locations;    // silo endpoint of each group, as last seen
    private long _lastForward = Stopwatch.GetTimestamp();
    private string? _placedFor;      // the eligible silo set the heads were last found placed for

    private string Key => this.GetPrimaryKeyString();

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        int idleSeconds = scatter.Value.RebalanceIdleSeconds;
        if (idleSeconds > 0)
        {
            var period = TimeSpan.FromSeconds(idleSeconds);
            this.RegisterGrainTimer(RebalanceWhenIdle, new GrainTimerCreationOptions(period, period) { Interleave = false });
        }
        return Task.CompletedTask;
    }

    public async Task Initialize(AttentionSpec spec)
    {
        state.State = new LayerState { Spec = spec.Resolve() };
        await state.WriteStateAsync();
        _outputWeights = null;
        _locations = null;
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

    public async Task<ForwardResult> Forward(ForwardCommand command, CancellationToken cancellationToken = default)
    {
        var spec = await RequireSpecForForward();
        if (!state.State.Ready)
            throw new HeadwiseException(ErrorCode.FailedPrecondition, $"layer '{Key}' has no weights yet; upload the model's weights before Forward.");
        ForwardValidator.Validate(command, spec, limits.Value);

        using var telemetry = HeadwiseTelemetry.StartForward(Key, command, spec);

        var outputWeights = _outputWeights ??= await AssembleOutputWeights(spec);
        var groups = await ScatterToHeads(command, spec, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        var result = GatherAndProject(command, spec, groups, outputWeights);
        _lastForward = Stopwatch.GetTimestamp();
        telemetry.Complete(result);
        return result;
    }

    public async Task<LayerProjection> GetProjection()
    {
        var spec = await RequireSpecForForward();
        if (!state.State.Ready)
            throw new HeadwiseException(ErrorCode.FailedPrecondition, $"layer '{Key}' has no weights yet; upload the model's weights before opening a session.");
        var outputWeights = _outputWeights ??= await AssembleOutputWeights(spec);
        return new LayerProjection
        {
            Spec = spec,
            OutputWeights = FloatBytes.ToBytes(outputWeights),
            OutputBias = state.State.OutputBias,
            HeadVersions = _headVersions,
        };
    }

    public async Task<HeadLocation[]> Locate()
    {
        var spec = RequireSpec();
        int layer = ParseKey().Layer;
        var silos = await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).GetSilo()));
        _locations = silos;
        return silos.Select((silo, group) => new HeadLocation(layer, group, silo)).ToArray();
    }

    public async Task<int> Rebalance()
    {
        var spec = RequireSpec();
        var silos = PlacementSilos.Eligible(membership, services.GetService<IClusterManifestProvider>());
        var current = await Locate();
        var metadata = services.GetService<ISiloMetadataCache>();
        int layer = ParseKey().Layer;
        var misplaced = current
            .Where(h => HeadAllocation.SiloFor(h.Group + layer, silos, metadata).Endpoint.ToString() != h.Silo)
            .ToList();
        // A deactivated head finishes its current call first; its next call activates it where the placement says,
        // with its weights read back from storage. Locate() does that now rather than on the next forward pass.
        await Task.WhenAll(misplaced.Select(h => Head(h.Group, spec).Deactivate()));
        // Converged only when nothing had to move: a silo another silo has not fully learned of yet can make a
        // move land elsewhere, and the next idle check then tries again.
        if (misplaced.Count == 0) _placedFor = PlacementSilos.SetKey(silos);
        else await Locate();
        return misplaced.Count;
    }

    public async Task Delete()
    {
        if (state.State.Spec is { } spec)
            await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).Clear()));
        _outputWeights = null;
        _locations = null;
        await state.ClearStateAsync();
        state.State = new LayerState();
        DeactivateOnIdle();
    }

    // A silo left or died between looking the heads up and calling them: look again, a bounded number of times
    // with backoff (HeadCallRetry); their weights come back from storage wherever they re-activate.
    private Task<GroupResult[]> ScatterToHeads(ForwardCommand command, AttentionSpec spec, CancellationToken cancellationToken) =>
        HeadCallRetry.RunAsync(() => ScatterOnce(command, spec, cancellationToken), () => _locations = null, cancellationToken);

    private async Task<GroupResult[]> ScatterOnce(ForwardCommand command, AttentionSpec spec, CancellationToken cancellationToken)
    {
        var active = membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress.Endpoint.ToString()).ToHashSet();
        if (_locations is null || _locations.Any(silo => !active.Contains(silo))) await Locate();
        var locations = _locations!;
        var (model, layer) = ParseKey();
        var headKeys = Enumerable.Range(0, spec.GroupCount).Select(g => GrainKeys.Head(model, layer, g)).ToArray();
        // One immutable HeadWork for all heads: in-silo calls share it without a copy.
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
        // A token does not reach head calls that are already running: when the caller gives up, tell every
        // silo's relay to call this pass off, and its heads stop at their next sequence.
        using var callOff = cancellationToken.Register(() =>
        {
            foreach (var target in locations.Distinct())
                _ = GrainFactory.GetGrain<ISiloRelayGrain>(GrainKeys.Relay(target)).Cancel(work.ForwardId);
        });
        var wire = command.Bf16Wire ? WireFormat.Bf16 : scatter.Value.WireFormat;
        var groups = await new HeadScatter(GrainFactory, silo.Name, scatter.Value.Scatter).Run(work, wire, headKeys, locations, cancellationToken);
        // A head that answered from elsewhere has moved: look its layer up again before the next pass.
        if (groups.Where((g, i) => g.Outcome.Silo != locations[i]).Any()) _locations = null;
        return groups;
    }

    private ForwardResult GatherAndProject(ForwardCommand command, AttentionSpec spec, GroupResult[] groups, float[] outputWeights)
    {
        int rows = command.Batch * command.Tokens;
        int concatWidth = spec.HeadCount * spec.HeadDim;
        var concat = ArrayPool<float>.Shared.Rent(rows * concatWidth);
        try
        {
            var concatenated = concat.AsSpan(0, rows * concatWidth);
            HeadGather.Concatenate(groups, rows, spec, concatenated);

            var output = new byte[rows * spec.ModelDim * sizeof(float)];
            using (HeadwiseTelemetry.StartOutputProjection(rows, concatWidth, spec.ModelDim))
            {
                var bias = state.State.OutputBias is { } b ? FloatBytes.AsFloats(b) : ReadOnlySpan<float>.Empty;
                kernel.Project(concatenated, rows, concatWidth, outputWeights, spec.ModelDim, bias, FloatBytes.AsFloats(output.AsSpan()));
            }

            return new ForwardResult
            {
                Output = output,
                Heads = groups.Select((r, g) => new HeadReport
                {
                    Group = g,
                    Heads = Enumerable.Range(g * spec.GroupSize, spec.GroupSize).ToArray(),
                    Silo = r.Outcome.Silo,
                    Kernel = r.Outcome.Kernel,
                    ComputeMs = r.Outcome.ComputeMs,
                    CallMs = r.CallMs,
                    InputBytes = r.InputBytes,
                    OutputBytes = r.OutputBytes,
                }).ToArray(),
                Silos = Traffic(groups),
                Attention = command.ReturnAttention ? HeadGather.Attention(groups, command.Batch, command.Tokens, spec) : null,
                HeadOutputs = command.ReturnHeadOutputs ? HeadGather.SplitHeads(concatenated, command.Batch, command.Tokens, spec) : null,
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

    // Per silo, X counts once per relay call (every group of that silo reports the same bytes) or once per head.
    private SiloTraffic[] Traffic(GroupResult[] groups) =>
        groups.GroupBy(g => g.Outcome.Silo).Select(silo => new SiloTraffic
        {
            Silo = silo.Key,
            Groups = silo.Count(),
            BytesSent = scatter.Value.Scatter == ScatterMode.PerHead ? silo.Sum(g => g.InputBytes) : silo.Max(g => g.InputBytes),
            BytesReceived = silo.Sum(g => g.OutputBytes),
        }).OrderBy(t => t.Silo, StringComparer.Ordinal).ToArray();

    private async Task RebalanceWhenIdle(CancellationToken cancellationToken)
    {
        // Only between passes, only when the heads have been idle for a while, only when the silo set changed.
        if (state.State.Spec is null || !state.State.Ready) return;
        if (Stopwatch.GetElapsedTime(_lastForward).TotalSeconds < scatter.Value.RebalanceIdleSeconds) return;
        if (PlacementSilos.SetKey(PlacementSilos.Eligible(membership, services.GetService<IClusterManifestProvider>())) == _placedFor) return;
        await Rebalance();
    }

    private async Task<float[]> AssembleOutputWeights(AttentionSpec spec)
    {
        var blocks = await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).GetOutputRows()));
        _headVersions = blocks.Select(b => b.WeightsVersion).ToArray();
        var weights = new float[spec.HeadCount * spec.HeadDim * spec.ModelDim];
        int offset = 0;
        foreach (var block in blocks)
        {
            var rows = FloatBytes.AsFloats(block.Rows);
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

    private (string Model, int Layer) ParseKey()
    {
        int slash = Key.LastIndexOf('/');
        return (Key[..slash], int.Parse(Key.AsSpan(slash + 1), System.Globalization.CultureInfo.InvariantCulture));
    }
}
