namespace Headwise.Contracts;

/// <summary>
/// The owner of one attention layer (key "{model}/{layer}"): its spec, b_O and readiness, the loading of its heads'
/// weights and their placement. Forward passes are coordinated elsewhere (<see cref="IForwardCoordinatorGrain"/>, on
/// the silo the request reached), from the plan this grain hands out.
/// </summary>
public interface ILayerGrain : IGrainWithStringKey
{
    Task Initialize(AttentionSpec spec);
    /// <summary>Stages one group's weights of an upload in its head grain, beside the weights it serves.</summary>
    Task StageGroup(Guid upload, GroupWeights weights);
    /// <summary>Stages b_O of an upload once every group is staged; InvalidArgument naming the groups missing.</summary>
    Task StageLayer(Guid upload, byte[]? outputBias);
    /// <summary>Switches the layer and its heads to a committed upload (the catalog calls it after its commit).</summary>
    Task Promote(WeightsVersion version);
    /// <summary>Drops what an upload staged in the layer and its heads.</summary>
    Task Abort(Guid upload);
    /// <summary>
    /// What a coordinator needs to run passes of this layer: the spec, b_O, and where each head group is active with
    /// the version of its weights. NotFound for an unknown layer, FailedPrecondition while it has no weights. Not
    /// read-only: a plan switches a layer or head that missed the last commit (plans are cached per silo, so it is rare).
    /// </summary>
    Task<LayerPlanInfo> GetPlan();
    Task<HeadLocation[]> Locate();
    /// <summary>The resolved spec, W_O and b_O, for a decode session; NotFound or FailedPrecondition like Forward.</summary>
    Task<LayerProjection> GetProjection();
    /// <summary>
    /// <see cref="GetProjection"/>, leaving W_O out when <paramref name="heldVersions"/> equals the layer's head
    /// versions (the caller's copy is current). A method of its own, not a parameter added to GetProjection: Orleans
    /// hashes a method's parameter types into its wire id, and silos of two releases must still call each other.
    /// </summary>
    Task<LayerProjection> GetProjectionUnlessHeld(Guid[] heldVersions);
    /// <summary>Moves the heads that are not where the placement puts them over the current silos; returns how many moved.</summary>
    Task<int> Rebalance();
    /// <summary>Forgets the layer and the weights of its heads.</summary>
    Task Delete();
}

/// <summary>A layer's plan for forward passes (<see cref="ILayerGrain.GetPlan"/>).</summary>
[GenerateSerializer, Immutable, Alias("headwise.layer-plan")]
public sealed record LayerPlanInfo
{
    [Id(0)] public required AttentionSpec Spec { get; init; }
    /// <summary>b_O: [D] float32 bytes, or null.</summary>
    [Id(1)] public byte[]? OutputBias { get; init; }
    /// <summary>Per group: the silo endpoint it is active on.</summary>
    [Id(2)] public required string[] HeadSilos { get; init; }
    /// <summary>Per group: the version of the weights it serves.</summary>
    [Id(3)] public required Guid[] HeadVersions { get; init; }
}
