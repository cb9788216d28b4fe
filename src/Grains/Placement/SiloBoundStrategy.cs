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

/// <summary>Finds the compatible silo whose endpoint is the grain's key.</summary>
public sealed class SiloBoundDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var endpoint = target.GrainIdentity.Key.ToString();
        var compatible = context.GetCompatibleSilos(target);
        var silo = compatible.FirstOrDefault(s => s.Endpoint.ToString() == endpoint);
        return silo is not null
            ? Task.FromResult(silo)
            : throw new Contracts.HeadwiseException(ErrorCode.Unavailable,
                $"silo {endpoint} is not in the cluster (active: {string.Join(", ", compatible.Select(s => s.Endpoint))}).");
    }
}
