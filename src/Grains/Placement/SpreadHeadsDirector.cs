using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Headwise.Grains.Placement;

/// <summary>
/// Places a head grain on the silo <see cref="HeadAllocation"/> gives its key "{model}/{layer}/{group}", among
/// <see cref="PlacementSilos.Eligible(IClusterMembershipService?, IEnumerable{SiloAddress})"/>: the list the layer's
/// re-balancing judges by, so the two agree. A placement hint (<see cref="IPlacementDirector.PlacementHintKey"/>, set by
/// the layer when it migrates a head it judged misplaced, or by Orleans' own migration tools) wins when it names an
/// eligible silo: the silo that moves the head may not have learned of a new silo yet, the layer that judged it has.
/// </summary>
public sealed class SpreadHeadsDirector(IServiceProvider services) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var compatible = context.GetCompatibleSilos(target);
        var eligible = PlacementSilos.Eligible(services.GetService<IClusterMembershipService>(), compatible);
        IReadOnlyList<SiloAddress> silos = eligible.Count > 0 ? eligible : compatible;
        if (target.RequestContextData is { } data && IPlacementDirector.GetPlacementHint(data, [.. silos]) is { } hint)
            return Task.FromResult(hint);
        var key = target.GrainIdentity.Key.ToString() ?? "";
        int slot = HeadAllocation.SlotOf(key) ?? (int)(target.GrainIdentity.GetUniformHashCode() & int.MaxValue);
        return Task.FromResult(HeadAllocation.SiloFor(slot, silos, services.GetService<ISiloMetadataCache>()));
    }
}
