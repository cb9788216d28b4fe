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

    public async Task StageGroup(Guid upload, GroupWeights weights)
    {
        var spec = RequireSpec();
        await Head(weights.Group, spec).Stage(upload, spec, weights);
    }

    public async Task StageLayer(Guid upload, byte[]? outputBias)
    {
        var spec = RequireSpec();
        if (spec.HasOutputBias && outputBias?.Length != spec.ModelDim * sizeof(float))
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"b_O has {outputBias?.Length ?? 0} bytes; the spec needs {spec.ModelDim} float32 values.");
        var staged = await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).HasStaged(upload)));
        var missing = Enumerable.Range(0, spec.GroupCount).Where(g => !staged[g]).ToArray();
        if (missing.Length > 0)
            throw new HeadwiseException(ErrorCode.InvalidArgument,
                $"layer '{Key}': the upload has no weights for head groups {string.Join(", ", missing.Take(16))}{(missing.Length > 16 ? ", …" : "")}.");
        state.State.Staged[upload] = new StagedLayer(spec.HasOutputBias ? outputBias : null);
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            state.State.Staged.Remove(upload);
            throw;
        }
    }

    public async Task Promote(WeightsVersion version)
    {
        var spec = RequireSpec();
        if (version.Generation <= state.State.Version.Generation) return;
        if (!state.State.Staged.TryGetValue(version.Upload, out var staged))
            throw new HeadwiseException(ErrorCode.FailedPrecondition, $"layer '{Key}' has no staged weights of upload {version.Upload}; upload the model's weights again.");
        // Heads first: until this layer's state names the new version its plans name the old one, which every head
        // still answers (LocalHeads keeps it); from then on plans name the new one, which every head already serves.
        await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).Promote(version)));
        var previous = state.State.Version;
        var served = (state.State.Version, state.State.OutputBias, state.State.Ready);
        state.State.Version = version;
        state.State.OutputBias = staged.OutputBias;
        state.State.Ready = true;
        state.State.Staged.Remove(version.Upload);
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            (state.State.Version, state.State.OutputBias, state.State.Ready) = served;
            state.State.Staged[version.Upload] = staged;
            throw;
        }
        _outputWeights = null;
        // Plans made from now on name the new version. A pass planned with the old one that has not reached its heads
        // yet finds them switched and is planned again; one already computing holds the old weights it started with.
        // So the old weights can go now, and must: once the upload has answered, no pass may be answered with them.
        if (previous.Upload != Guid.Empty)
        {
            try
            {
                await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).Retire(previous.Upload)));
            }
            catch (Exception)
            {
                // A head on a silo lost meanwhile took its weights with it; the others retire on their own (HeadGrain).
            }
        }
    }

    public async Task Abort(Guid upload)
    {
        if (state.State.Spec is not { } spec) return;
        await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => Head(g, spec).Abort(upload)));
        if (state.State.Staged.Remove(upload, out var staged))
        {
            try
            {
                await state.WriteStateAsync();
            }
            catch
            {
                state.State.Staged[upload] = staged;
                throw;
            }
        }
    }

    public async Task<LayerPlanInfo> GetPlan()
    {
        var spec = await RequireSpecForForward();
        await CatchUp();
        if (!state.State.Ready)
            throw new HeadwiseException(ErrorCode.FailedPrecondition, $"layer '{Key}' has no weights yet; upload the model's weights before Forward.");
        // Describing each head activates it where placement says, so the plan's silos are where its heads now are.
        var heads = await DescribeHeads(spec);
        _locations = heads.Select(h => h.Silo).ToArray();
        return new LayerPlanInfo
        {
            Spec = spec,
            OutputBias = state.State.OutputBias,
            HeadSilos = _locations,
            HeadVersions = heads.Select(_ => state.State.Version.Upload).ToArray(),
        };
    }

    // Every head serving this layer's version: one that missed a switch (its silo lost mid-way) is switched now.
    private async Task<HeadPlacement[]> DescribeHeads(AttentionSpec spec) =>
        await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(g => DescribeServing(g, spec)));

    private async Task<HeadPlacement> DescribeServing(int group, AttentionSpec spec)
    {
        var head = Head(group, spec);
        var wanted = state.State.Version;
        try
        {
            var placement = await head.Describe();
            if (placement.Version == wanted.Upload) return placement;
        }
        catch (HeadwiseException e) when (e.Code == ErrorCode.FailedPrecondition)
        {
            // No weights served yet: it missed the first switch.
        }
        await head.Promote(wanted);
        var switched = await head.Describe();
        return switched.Version == wanted.Upload
            ? switched
            : throw new HeadwiseException(ErrorCode.Unavailable,
                $"layer '{Key}' is switching to newer weights (head group {group} serves another version); retry.");
    }

    // A layer whose switch was interrupted after the catalog's commit (its silo lost mid-way) learns of it here.
    private async Task CatchUp()
    {
        if (state.State.Staged.Count == 0) return;
        var committed = await GrainFactory.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).GetCommitted(ParseKey().Model);
        if (committed.Generation > state.State.Version.Generation && state.State.Staged.ContainsKey(committed.Upload))
            await Promote(committed);
    }

    public Task<LayerProjection> GetProjection() => Project(heldVersions: null);

    public Task<LayerProjection> GetProjectionUnlessHeld(Guid[] heldVersions) => Project(heldVersions);

    private async Task<LayerProjection> Project(Guid[]? heldVersions)
    {
        var spec = await RequireSpecForForward();
        await CatchUp();
        if (!state.State.Ready)
            throw new HeadwiseException(ErrorCode.FailedPrecondition, $"layer '{Key}' has no weights yet; upload the model's weights before opening a session.");
        if (_outputWeights is null) await DescribeHeads(spec);
        var outputWeights = _outputWeights ??= await AssembleOutputWeights(spec);
        // W_O is megabytes (2.4 for GPT-2 small, 64 for a 4096-wide layer): a silo whose sessions already hold this
        // version's copy gets the rest without it, rather than a fresh copy per session opened.
        bool held = heldVersions is not null && heldVersions.AsSpan().SequenceEqual(_headVersions);
        return new LayerProjection
        {
            Spec = spec,
            OutputWeights = held ? [] : FloatBytes.ToBytes(outputWeights),
            OutputWeightsHeld = held,
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
        if (blocks.Any(b => b.WeightsVersion != state.State.Version.Upload))
            throw new HeadwiseException(ErrorCode.Unavailable, $"layer '{Key}' is switching to newer weights; retry.");
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
