using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Headwise.Grains.Placement;

/// <summary>
/// Places a head grain on the silo <see cref="HeadAllocation"/> gives its key "{model}/{layer}/{group}", among the
/// silos membership reports active: the same list the layer's rebalance uses, so the two agree on where each head
/// belongs. (Orleans' compatible-silo list lags a joining silo by the time its grain manifest takes to arrive; a head
/// placed by one list and judged by the other was moved back and forth, and re-balancing never converged.)
/// </summary>
public sealed class SpreadHeadsDirector(IServiceProvider services) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var compatible = context.GetCompatibleSilos(target);
        var active = services.GetService<IClusterMembershipService>()?.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress).ToList();
        IReadOnlyList<SiloAddress> silos = active is { Count: > 0 } ? active : compatible;
        var key = target.GrainIdentity.Key.ToString() ?? "";
        int slot = HeadAllocation.SlotOf(key) ?? (int)(target.GrainIdentity.GetUniformHashCode() & int.MaxValue);
        return Task.FromResult(HeadAllocation.SiloFor(slot, silos, services.GetService<ISiloMetadataCache>()));
    }
}
