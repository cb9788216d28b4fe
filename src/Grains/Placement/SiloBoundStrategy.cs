using Microsoft.Extensions.DependencyInjection;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Headwise.Grains.Placement;

/// <summary>Places a grain on the silo its key names ("127.0.0.1:11111"): one relay per silo.</summary>
[GenerateSerializer, Immutable, Alias("headwise.silo-bound")]
public sealed class SiloBoundStrategy : PlacementStrategy
{
    internal static readonly SiloBoundStrategy Instance = new();
}

/// <summary>Marks a grain class for <see cref="SiloBoundStrategy"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SiloBoundPlacementAttribute() : PlacementAttribute(SiloBoundStrategy.Instance);

/// <summary>
/// Finds the silo whose endpoint is the grain's key among the silos membership reports active — the list head
/// placement uses (<see cref="SpreadHeadsDirector"/>), so a silo that already holds heads always has its relay —
/// or, failing that, among Orleans' compatible silos.
/// </summary>
public sealed class SiloBoundDirector(IServiceProvider services) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var endpoint = target.GrainIdentity.Key.ToString();
        var active = services.GetService<IClusterMembershipService>()?.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress).ToList() ?? [];
        var compatible = context.GetCompatibleSilos(target);
        var silo = active.FirstOrDefault(s => s.Endpoint.ToString() == endpoint)
                   ?? compatible.FirstOrDefault(s => s.Endpoint.ToString() == endpoint);
        return silo is not null
            ? Task.FromResult(silo)
            : throw new Contracts.HeadwiseException(ErrorCode.Unavailable,
                $"silo {endpoint} is not in the cluster (active: {string.Join(", ", active.Concat(compatible).Select(s => s.Endpoint.ToString()).Distinct())}).");
    }
}
