using System.Globalization;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Headwise.Grains.Placement;

/// <summary>
/// Which silo a head group belongs on. Silos are ordered by address and weighted by the speed they advertise;
/// slots go round a smooth weighted round-robin, so equal silos get equal shares (12 over 3 → 4/4/4,
/// 25 over 4 → 7/6/6/6) and a silo twice as fast gets twice the heads. The director (placing a new activation)
/// and the coordinator (deciding whether to rebalance) both ask this class, so they always agree.
/// </summary>
public static class HeadAllocation
{
    public const string KernelKey = "headwise.kernel";
    public const string SpeedKey = "headwise.gflops";

    /// <summary>The silo for <paramref name="slot"/> (group + layer) among <paramref name="silos"/>.</summary>
    public static SiloAddress SiloFor(int slot, IReadOnlyList<SiloAddress> silos, ISiloMetadataCache? metadata)
    {
        var ordered = silos.OrderBy(s => s.Endpoint.ToString(), StringComparer.Ordinal).ToArray();
        var weights = Weights(ordered.Select(s => Speed(s, metadata)).ToArray());
        return ordered[SmoothWeightedRoundRobin(weights, slot)];
    }

    /// <summary>
    /// Integer weights from speeds: relative to the slowest silo, in steps of one half, so the noise of a
    /// start-up measurement (±20%) does not split equal silos unevenly. Unknown speeds count as the slowest.
    /// </summary>
    public static int[] Weights(IReadOnlyList<double?> speeds)
    {
        var known = speeds.Where(s => s is > 0).Select(s => s!.Value).ToArray();
        double slowest = known.Length == 0 ? 1 : known.Min();
        return speeds.Select(s => s is > 0 ? Math.Max(2, (int)Math.Round(2 * s.Value / slowest)) : 2).ToArray();
    }

    /// <summary>The index chosen at position <paramref name="slot"/> of nginx's smooth weighted round-robin.</summary>
    public static int SmoothWeightedRoundRobin(IReadOnlyList<int> weights, int slot)
    {
        int total = weights.Sum();
        int position = ((slot % total) + total) % total;
        var current = new int[weights.Count];
        int chosen = 0;
        for (int step = 0; step <= position; step++)
        {
            chosen = 0;
            for (int i = 0; i < current.Length; i++)
            {
                current[i] += weights[i];
                if (current[i] > current[chosen]) chosen = i;
            }
            current[chosen] -= total;
        }
        return chosen;
    }

    /// <summary>The slot of a head grain key "{model}/{layer}/{group}": group + layer, so layers start on different silos.</summary>
    public static int? SlotOf(string headKey)
    {
        var parts = headKey.Split('/');
        return parts.Length >= 3 && int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out int group)
               && int.TryParse(parts[^2], NumberStyles.None, CultureInfo.InvariantCulture, out int layer)
            ? group + layer
            : null;
    }

    private static double? Speed(SiloAddress silo, ISiloMetadataCache? metadata) =>
        metadata?.GetSiloMetadata(silo).Metadata.TryGetValue(SpeedKey, out var text) == true
        && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double speed)
            ? speed
            : null;
}
