namespace Headwise.Contracts;

/// <summary>
/// The coordinator of one attention layer (key "{model}/{layer}"): it validates a forward pass, scatters
/// the input to the layer's head grains, gathers their Z and applies W_O.
/// </summary>
public interface ILayerGrain : IGrainWithStringKey
{
    Task Initialize(AttentionSpec spec);
    /// <summary>Stores one group's weights in its head grain.</summary>
    Task LoadGroup(GroupWeights weights);
    /// <summary>Records b_O and marks the layer ready; the coordinator re-assembles W_O from its heads.</summary>
    Task CompleteLoad(byte[]? outputBias);
    /// <summary>
    /// One forward pass. Read-only, so passes of the same layer interleave (while one waits for its heads another
    /// scatters); loading weights, re-balancing and deleting still wait for passes under way, and they for them.
    /// </summary>
    /// <remarks>Cancelling <paramref name="cancellationToken"/> (the caller's deadline) stops the coordinator's retries
    /// and answers OperationCanceledException; head work already running finishes.</remarks>
    [Orleans.Concurrency.ReadOnly]
    Task<ForwardResult> Forward(ForwardCommand command, CancellationToken cancellationToken = default);
    Task<HeadLocation[]> Locate();
    /// <summary>The resolved spec, W_O and b_O, for a decode session; NotFound or FailedPrecondition like Forward.</summary>
    [Orleans.Concurrency.ReadOnly]
    Task<LayerProjection> GetProjection();
    /// <summary>Moves the heads that are not where the placement puts them over the current silos; returns how many moved.</summary>
    Task<int> Rebalance();
    /// <summary>Forgets the layer and the weights of its heads.</summary>
    Task Delete();
}
