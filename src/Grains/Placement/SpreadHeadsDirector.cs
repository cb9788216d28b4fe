using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Headwise.Grains.Placement;

/// <summary>
/// Places a head grain on the silo <see cref="HeadAllocation"/> gives its key "{model}/{layer}/{group}", among
/// <see cref="PlacementSilos.Eligible(IClusterMembershipService?, IEnumerable{SiloAddress})"/>: the list the layer's
/// re-balancing judges by, so the two agree.
/// </summary>
public sealed class SpreadHeadsDirector(IServiceProvider services) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var compatible = context.GetCompatibleSilos(target);
        var eligible = PlacementSilos.Eligible(services.GetService<IClusterMembershipService>(), compatible);
        IReadOnlyList<SiloAddress> silos = eligible.Count > 0 ? eligible : compatible;
        var key = target.GrainIdentity.Key.ToString() ?? "";
        int slot = HeadAllocation.SlotOf(key) ?? (int)(target.GrainIdentity.GetUniformHashCode() & int.MaxValue);
        return Task.FromResult(HeadAllocation.SiloFor(slot, silos, services.GetService<ISiloMetadataCache>()));
    }
}
