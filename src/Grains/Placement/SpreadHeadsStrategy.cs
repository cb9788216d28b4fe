using Orleans.Placement;
using Orleans.Runtime;

namespace Headwise.Grains.Placement;

/// <summary>
/// Places the head groups of a layer round-robin over the compatible silos, ordered by address, so any head
/// count spreads evenly over any silo count (12 over 3 → 4/4/4, 25 over 4 → 7/6/6/6). Orleans' default
/// placement skewed 30 grains 17/10/3 over 3 silos, and the slowest silo decides a forward pass's time.
/// </summary>
[GenerateSerializer, Immutable, Alias("headwise.spread-heads")]
public sealed class SpreadHeadsStrategy : PlacementStrategy
{
    internal static readonly SpreadHeadsStrategy Instance = new();
}

/// <summary>Marks a grain class for <see cref="SpreadHeadsStrategy"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SpreadHeadsPlacementAttribute() : PlacementAttribute(SpreadHeadsStrategy.Instance);
