using System.Globalization;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Headwise.Grains.Placement;

/// <summary>
/// Which silo a head group belongs on. Silos are ordered by address and weighted by what they advertise in their
/// silo metadata (<see cref="SiloProfile"/>); slots go round a smooth weighted round-robin. Silos that run the same
/// kernel on the same number of cores are equal and get equal shares (12 over 3 → 4/4/4, 25 over 4 → 7/6/6/6) whatever
/// their start-up speed probes said; only silos that really differ (kernel, cores, or a speed the operator set) are
/// weighted by speed, so a silo twice as fast gets twice the heads. The director (placing a new activation) and the
/// coordinator (deciding whether to rebalance) both ask this class, so they agree whenever they see the same metadata.
/// </summary>
public static class HeadAllocation
{
    /// <summary>Silo metadata key: the name of the kernel the silo's heads run (simd, gpu, reference…).</summary>
    public const string KernelKey = "headwise.kernel";
    /// <summary>Silo metadata key: GFLOP/s, measured at start or set by the operator (Headwise__Speed).</summary>
    public const string SpeedKey = "headwise.gflops";
    /// <summary>Silo metadata key: the cores the silo's kernel spreads over (<see cref="Environment.ProcessorCount"/>).</summary>
    public const string CoresKey = "headwise.cores";
    /// <summary>Silo metadata key: <see cref="ConfiguredSpeed"/> when the operator set the speed, else <see cref="MeasuredSpeed"/>.</summary>
    public const string SpeedSourceKey = "headwise.speed-source";
    public const string ConfiguredSpeed = "configured";
    public const string MeasuredSpeed = "measured";

    /// <summary>What a silo advertises for placement: its kernel, cores and speed, and where the speed came from.</summary>
    public static Dictionary<string, string> Metadata(string kernel, int cores, double gflops, bool speedConfigured) =>
        new()
        {
            [KernelKey] = kernel,
            [CoresKey] = cores.ToString(CultureInfo.InvariantCulture),
            [SpeedKey] = gflops.ToString("F1", CultureInfo.InvariantCulture),
            [SpeedSourceKey] = speedConfigured ? ConfiguredSpeed : MeasuredSpeed,
        };

    /// <summary>The silo for <paramref name="slot"/> (group + layer) among <paramref name="silos"/>.</summary>
    public static SiloAddress SiloFor(int slot, IReadOnlyList<SiloAddress> silos, ISiloMetadataCache? metadata)
    {
        var ordered = Order(silos);
        return ordered[SmoothWeightedRoundRobin(WeightsOf(ordered.Select(s => Profile(s, metadata)).ToArray()), slot)];
    }

    /// <summary>
    /// The weight of each of <paramref name="silos"/> in address order (the order <see cref="SiloFor"/> uses): a value
    /// that changes exactly when the placement over these silos does, e.g. when a silo's metadata arrives.
    /// </summary>
    public static int[] WeightsFor(IReadOnlyList<SiloAddress> silos, ISiloMetadataCache? metadata) =>
        WeightsOf(Order(silos).Select(s => Profile(s, metadata)).ToArray());

    /// <summary>
    /// Integer weights from profiles (null: metadata not known yet). All equal when every silo runs the same kernel on
    /// the same cores with no operator-set speed, or when any silo's metadata is unknown (nothing then says the silos
    /// differ, and a silo not heard from must not get a skewed share). Otherwise each class of equal silos weighs by its
    /// speed (the operator's, else the mean of its members' probes, so equal silos stay equal) via <see cref="Weights(IReadOnlyList{double?})"/>.
    /// </summary>
    public static int[] WeightsOf(IReadOnlyList<SiloProfile?> profiles)
    {
        var known = profiles.OfType<SiloProfile>().ToArray();
        if (known.Length < profiles.Count || known.Select(p => p.Class).Distinct().Count() <= 1)
            return Enumerable.Repeat(1, profiles.Count).ToArray();
        var classSpeeds = known.GroupBy(p => p.Class).ToDictionary(g => g.Key, g =>
        {
            var speeds = g.Where(p => p.Gflops is > 0).Select(p => p.Gflops!.Value).ToArray();
            return speeds.Length == 0 ? (double?)null : speeds.Average();
        });
        return Weights(known.Select(p => classSpeeds[p.Class]).ToArray());
    }

    /// <summary>
    /// Integer weights from speeds: relative to the slowest silo, in steps of one half, so the noise of a
    /// start-up measurement (±20%) does not split silos of nearly equal speed unevenly. Unknown speeds count as the slowest.
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

    private static SiloAddress[] Order(IReadOnlyList<SiloAddress> silos) =>
        silos.OrderBy(s => s.Endpoint.ToString(), StringComparer.Ordinal).ToArray();

    // SiloMetadataCache answers SiloMetadata.Empty for a silo it has not fetched metadata from (yet).
    private static SiloProfile? Profile(SiloAddress silo, ISiloMetadataCache? metadata) =>
        metadata is null ? null : SiloProfile.From(metadata.GetSiloMetadata(silo).Metadata);
}

/// <summary>
/// A silo as placement sees it, read from its silo metadata. Silos of one <see cref="Class"/> are interchangeable:
/// same kernel, same cores, and no speed the operator set (a set speed is a deliberate difference, kept as given).
/// </summary>
public sealed record SiloProfile(string? Kernel, int? Cores, double? Gflops, bool SpeedConfigured)
{
    /// <summary>What makes two silos differ for placement; a measured speed does not, a configured one does.</summary>
    public (string? Kernel, int? Cores, double? ConfiguredGflops) Class => (Kernel, Cores, SpeedConfigured ? Gflops : null);

    /// <summary>The profile in <paramref name="metadata"/>, or null when it carries none of Headwise's keys.</summary>
    public static SiloProfile? From(IReadOnlyDictionary<string, string> metadata)
    {
        metadata.TryGetValue(HeadAllocation.KernelKey, out var kernel);
        int? cores = metadata.TryGetValue(HeadAllocation.CoresKey, out var coresText)
                     && int.TryParse(coresText, NumberStyles.None, CultureInfo.InvariantCulture, out int c) && c > 0 ? c : null;
        double? gflops = metadata.TryGetValue(HeadAllocation.SpeedKey, out var speedText)
                         && double.TryParse(speedText, NumberStyles.Float, CultureInfo.InvariantCulture, out double s) && s > 0 ? s : null;
        bool configured = metadata.TryGetValue(HeadAllocation.SpeedSourceKey, out var source) && source == HeadAllocation.ConfiguredSpeed;
        return kernel is null && cores is null && gflops is null ? null : new SiloProfile(kernel, cores, gflops, configured);
    }
}
