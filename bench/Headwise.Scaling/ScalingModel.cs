using System.Globalization;
using Headwise.Contracts;
using Headwise.Grains.Forward;

namespace Headwise.Scaling;

/// <summary>
/// A first-order model of one forward pass over M machines as Headwise runs it now, built on constants measured here:
/// the coordinator sends X down a broadcast tree (each node sends to its children one after another: per message
/// a + b·bytes of serialisation, then bytes / bandwidth on the wire); every machine computes its share of heads and
/// their rows of W_O (row-parallel); each node receives its children's partial sums one after another and adds them;
/// the coordinator adds b_O. With <c>chunks</c> &gt; 1, X and the partial sums travel in that many pieces and a machine
/// starts on the first piece (what token-chunked pipelining would give; not built yet): only one piece per hop stays on
/// the critical path.
/// </summary>
internal sealed record ScalingModel(double MessageMs, double MsPerByte, double GflopsPerMachine)
{
    public static (double PerMessageMs, double PerByteMs) Fit(IReadOnlyList<(double Bytes, double Ms)> points)
    {
        double meanX = points.Average(p => p.Bytes), meanY = points.Average(p => p.Ms);
        double covariance = points.Sum(p => (p.Bytes - meanX) * (p.Ms - meanY));
        double variance = points.Sum(p => (p.Bytes - meanX) * (p.Bytes - meanX));
        double slope = variance == 0 ? 0 : covariance / variance;
        return (meanY - slope * meanX, slope);
    }

    /// <summary>Milliseconds of one layer's forward pass (not causal) over <paramref name="machines"/> machines.</summary>
    public double ForwardMs(int modelDim, int heads, int headDim, int tokens, int machines, double gigabitsPerSecond, int bytesPerValue,
        int fanout = 4, int chunks = 1, double? msPerByte = null)
    {
        double perByte = msPerByte ?? MsPerByte;
        double headFlops = 2.0 * tokens * modelDim * 3 * headDim + 4.0 * tokens * tokens * headDim + 2.0 * tokens * headDim * modelDim;
        double bytes = (double)tokens * modelDim * bytesPerValue; // X, and a partial sum, are both [T × D]
        double bytesPerMs = gigabitsPerSecond * 1e9 / 8 / 1000;
        double Hop(double b) => MessageMs + b * perByte + b / bytesPerMs;
        // With pieces, a hop holds the critical path for one piece only; the rest overlaps with compute.
        double hop = chunks <= 1 ? Hop(bytes) : Hop(bytes / chunks);
        double computeMs(int h) => h * headFlops / (GflopsPerMachine * 1e6);
        var share = Enumerable.Range(0, machines).Select(m => heads / machines + (m < heads % machines ? 1 : 0)).ToArray();

        // Node 0 is the coordinator; the others are laid out as ScatterTree lays out silos.
        double Node(int machine, int[] below, double arrival)
        {
            double own = arrival + computeMs(share[machine]);
            var children = Split(below, fanout);
            var ready = children.Select((c, i) => Node(c.Child, c.Below, arrival + (i + 1) * hop)).Order().ToArray();
            double t = own;
            foreach (double r in ready) t = Math.Max(t, r) + hop; // received one after another
            return t;
        }
        return Node(0, Enumerable.Range(1, machines - 1).ToArray(), 0);
    }

    // The tree the silos use (ScatterTree), over machine numbers.
    private static List<(int Child, int[] Below)> Split(int[] subtree, int fanout) =>
        ScatterTree.Children(subtree.Select(m => new SiloAssignment(m.ToString(CultureInfo.InvariantCulture), [])).ToArray(), fanout)
            .Select(c => (int.Parse(c.Child.Silo, CultureInfo.InvariantCulture), c.Below.Select(b => int.Parse(b.Silo, CultureInfo.InvariantCulture)).ToArray()))
            .ToList();
}
