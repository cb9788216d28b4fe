using Headwise.Contracts;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Core.Internal;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Headwise.Grains;

/// <summary>
/// The owner of one attention layer: its spec, b_O and readiness, the loading of its <see cref="HeadGrain"/>s, and
/// their placement (it moves them when the silo set changed, <see cref="Rebalance"/>). Forward passes do not come
/// here: <see cref="ForwardCoordinatorGrain"/> runs them on the silo each request reached, from the plan this grain
/// hands out (<see cref="GetPlan"/>); decode sessions take W_O from <see cref="GetProjection"/>.
/// </summary>
public sealed class LayerGrain(
    [PersistentState("layer", StorageNames.Weights)] IPersistentState<LayerState> state,
    IClusterMembershipService membership,
    IServiceProvider services,
    IOptions<ScatterOptions> scatter) : Grain, ILayerGrain
{
    private float[]? _outputWeights; // W_O: [Hq·dh × D]
    private Guid[] _headVersions = []; // per group, the weights version its rows of W_O came from
    private string[]? _locations;    // silo endpoint of each group, as last seen
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

    public async Task<LayerPlanInfo> GetPlan()
    {
        var spec = await RequireSpecForForward();
        if (!state.State.Ready)
            throw new HeadwiseException(ErrorCode.FailedPrecondition, $"layer '{Key}' has no weights yet; upload the model's weights before Forward.");
        // Describing each head activates it where placement says, so the plan's silos are where its heads now are.
        var heads = await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).Describe()));
        _locations = heads.Select(h => h.Silo).ToArray();
        return new LayerPlanInfo
        {
            Spec = spec,
            OutputBias = state.State.OutputBias,
            HeadSilos = _locations,
            HeadVersions = heads.Select(h => h.Version).ToArray(),
        };
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
            .Select(h => (h.Group, h.Silo, Target: HeadAllocation.SiloFor(h.Group + layer, silos, metadata)))
            .Where(h => h.Target.Endpoint.ToString() != h.Silo)
            .ToList();
        // Migrate each misplaced head to the silo judged here, named as a placement hint: it finishes its current call,
        // carries its state along, and the directory names its new silo from then on. (Deactivating it left the move
        // to its next call, which this silo's directory cache sent to the old silo, where Orleans re-created it
        // without asking placement: the heads stayed put, 2/2/8, however often the idle check tried.)
        await Task.WhenAll(misplaced.Select(h => Migrate(h.Group, spec, h.Target)));
        // Converged only when nothing had to move: a silo another silo has not fully learned of yet can make a
        // move land elsewhere, and the next idle check then tries again.
        if (misplaced.Count == 0) _placedFor = PlacementSilos.SetKey(silos, metadata);
        else await Locate();
        return misplaced.Count;
    }

    private async Task Migrate(int group, AttentionSpec spec, SiloAddress target)
    {
        RequestContext.Set(IPlacementDirector.PlacementHintKey, target);
        try
        {
            await Head(group, spec).Cast<IGrainManagementExtension>().MigrateOnIdle();
        }
        finally
        {
            RequestContext.Remove(IPlacementDirector.PlacementHintKey);
        }
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

    private async Task RebalanceWhenIdle(CancellationToken cancellationToken)
    {
        // Only when the silo set changed. Passes may be under way: a head moved under one is found by its relay at its
        // new silo and the pass re-routes those groups (SiloPass reports it moved), so no answer is lost.
        if (state.State.Spec is null || !state.State.Ready) return;
        var eligible = PlacementSilos.Eligible(membership, services.GetService<IClusterManifestProvider>());
        if (PlacementSilos.SetKey(eligible, services.GetService<ISiloMetadataCache>()) == _placedFor) return;
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
