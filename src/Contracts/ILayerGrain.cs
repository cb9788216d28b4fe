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
    [Orleans.Concurrency.ReadOnly]
    Task<ForwardResult> Forward(ForwardCommand command);
    Task<HeadLocation[]> Locate();
    /// <summary>Moves the heads that are not where the placement puts them over the current silos; returns how many moved.</summary>
    Task<int> Rebalance();
    /// <summary>Forgets the layer and the weights of its heads.</summary>
    Task Delete();
}
