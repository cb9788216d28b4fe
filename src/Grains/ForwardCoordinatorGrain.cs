using Headwise.Contracts;
using Headwise.Grains.Forward;
using Orleans.Concurrency;

namespace Headwise.Grains;

/// <summary>
/// The coordinator of a layer's forward passes on the silo the call reached (a stateless worker is always activated
/// locally): the gRPC gateway of this silo, or an Orleans client connected to it, calls it, and it runs the pass here
/// (<see cref="ForwardCoordinator"/>), so X crosses the network once, to the silos of the layer's heads.
/// Reentrant: passes of a layer interleave while they wait for their heads.
/// </summary>
[StatelessWorker(1), Reentrant]
public sealed class ForwardCoordinatorGrain(ForwardCoordinator coordinator) : Grain, IForwardCoordinatorGrain
{
    public Task<ForwardResult> Forward(ForwardCommand command, CancellationToken cancellationToken = default) =>
        coordinator.Forward(this.GetPrimaryKeyString(), command, cancellationToken);
}
