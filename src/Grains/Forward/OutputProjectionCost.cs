using Headwise.Contracts;

namespace Headwise.Grains.Forward;

/// <summary>
/// Chooses where the remote heads' W_O runs, from estimated times of the pass's critical path (docs/scaling.md fits
/// the constants):
/// <list type="bullet">
/// <item>gathered: T = max(own heads + own W_O, slowest remote silo's heads + every Z through the coordinator's link)
/// + the remote heads' W_O on the coordinator, one after another;</item>
/// <item>partial sums: T = max(own heads + own W_O, slowest remote silo's heads + its W_O + the partial sums up the
/// tree (one per child at the coordinator, one per level below)).</item>
/// </list>
/// Partial sums win when a silo's W_O costs more than sending D columns instead of its heads' g·dh: almost always for
/// several heads per silo; gathering wins for one narrow head per silo of a wide model on a slow link.
/// </summary>
public static class OutputProjectionCost
{
    /// <param name="ownGroups">Groups the coordinator's silo computes.</param>
    /// <param name="remoteGroups">Groups of each remote silo.</param>
    /// <param name="bytesPerValue">4 for float32, 2 for bf16 on the wire.</param>
    public static (OutputProjectionMode Mode, double PartialMs, double GatheredMs) Choose(AttentionSpec spec, int batch, int tokens, int ownGroups,
        IReadOnlyList<int> remoteGroups, int bytesPerValue, int fanout, double linkBytesPerSecond, double gflops)
    {
        if (remoteGroups.Count == 0) return (OutputProjectionMode.PartialSums, 0, 0);
        long rows = (long)batch * tokens;
        double flopsPerMs = gflops * 1e6, bytesPerMs = linkBytesPerSecond / 1e3;
        long groupWidth = (long)spec.GroupSize * spec.HeadDim;
        double attendMs = AttendFlops(spec, batch, tokens) / flopsPerMs;                     // one group's heads
        double projectMs(int groups) => 2.0 * rows * groups * groupWidth * spec.ModelDim / flopsPerMs;
        double own = ownGroups * attendMs + projectMs(ownGroups);

        double zBytes = remoteGroups.Sum(g => (double)rows * g * groupWidth * bytesPerValue);
        double gathered = Math.Max(own, remoteGroups.Max(g => g * attendMs) + zBytes / bytesPerMs)
                          + remoteGroups.Sum(projectMs);

        int children = Math.Min(fanout, remoteGroups.Count);
        int depth = ScatterTree.Depth(remoteGroups.Count, fanout);
        double partialBytes = (double)rows * spec.ModelDim * bytesPerValue;
        double partial = Math.Max(own, remoteGroups.Max(g => g * attendMs + projectMs(g))
                                       + (children + depth - 1) * partialBytes / bytesPerMs);
        return (partial <= gathered ? OutputProjectionMode.PartialSums : OutputProjectionMode.Gathered, partial, gathered);
    }

    // Q for g heads, K and V once, then Q·Kᵀ and P·V per query head (the head span's formula).
    private static double AttendFlops(AttentionSpec spec, int batch, int tokens)
    {
        double d = spec.ModelDim, dh = spec.HeadDim, g = spec.GroupSize, t = tokens;
        return batch * (2.0 * t * d * dh * (g + 2) + 4.0 * g * t * t * dh);
    }
}
