using Orleans.Metadata;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Headwise.Grains.Placement;

/// <summary>
/// The silos a head may be placed on: active in membership AND known to this silo's cluster manifest (Orleans'
/// compatible silos). The placement director and the layer's re-balancing both take this one list, so they agree on
/// where each head belongs; a silo that has joined but whose manifest has not arrived yet is in neither until it does.
/// </summary>
public static class PlacementSilos
{
    /// <summary>Active members among <paramref name="compatible"/>, or <paramref name="compatible"/> when membership is unknown.</summary>
    public static IReadOnlyList<SiloAddress> Eligible(IClusterMembershipService? membership, IEnumerable<SiloAddress> compatible)
    {
        var known = compatible.ToList();
        if (membership is null) return known;
        var active = Active(membership).ToHashSet();
        return known.Where(active.Contains).ToList();
    }

    /// <summary>The eligible silos as this silo sees them outside placement: active members with a manifest.</summary>
    public static IReadOnlyList<SiloAddress> Eligible(IClusterMembershipService membership, IClusterManifestProvider? manifests) =>
        Eligible(membership, manifests?.Current.Silos.Keys ?? Active(membership));

    private static IEnumerable<SiloAddress> Active(IClusterMembershipService membership) =>
        membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress);

    /// <summary>A value that changes whenever the eligible set does (membership versions alone miss a manifest arriving).</summary>
    public static string SetKey(IEnumerable<SiloAddress> silos) =>
        string.Join(",", silos.Select(s => s.ToString()).Order(StringComparer.Ordinal));

    /// <summary>
    /// A value that changes whenever the eligible set or the placement weights over it do: a silo's metadata arriving
    /// after the silo itself (Orleans' metadata cache fetches it separately, and retries a failed fetch only on a later
    /// membership change) can change where heads belong, and re-balancing must look again then.
    /// </summary>
    public static string SetKey(IReadOnlyList<SiloAddress> silos, ISiloMetadataCache? metadata) =>
        SetKey(silos) + "|" + string.Join(",", HeadAllocation.WeightsFor(silos, metadata));
}
