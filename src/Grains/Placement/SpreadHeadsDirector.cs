using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Headwise.Grains.Placement;

/// <summary>Chooses the silo of a head grain from its key "{model}/{layer}/{group}".</summary>
public sealed class SpreadHeadsDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target).OrderBy(s => s.ToParsableString(), StringComparer.Ordinal).ToArray();
        var parts = (target.GrainIdentity.Key.ToString() ?? "").Split('/');
        // Offsetting by the layer index keeps group 0 of every layer from landing on the same silo.
        int slot = parts.Length >= 3 && int.TryParse(parts[^1], out int group) && int.TryParse(parts[^2], out int layer)
            ? group + layer
            : (int)(target.GrainIdentity.GetUniformHashCode() & int.MaxValue);
        return Task.FromResult(silos[((slot % silos.Length) + silos.Length) % silos.Length]);
    }
}
