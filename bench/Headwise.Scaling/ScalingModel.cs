using System.Globalization;
using Headwise.Contracts;
using Headwise.Grains.Forward;

namespace Headwise.Scaling;

/// <summary>
/// A first-order model of one forward pass (not causal) over M machines as Headwise runs it, built on constants measured
/// here. The coordinator sends X down a broadcast tree; a node sends to its children at once over its one link, so k
/// children share it (each byte costs b of serialisation and 1 / bandwidth of wire, a frame a). Every machine computes its
/// share of heads and their rows of W_O (row-parallel); a node adds its children's partial sums, which share its link the
/// same way. With <c>pieces</c> &gt; 1 (Headwise__PieceRows), a node starts projecting on the first piece of X, passes X on
/// as it arrives, and sends its partial sum block by block while it computes the rest (a relay each block once its
/// children's rows are in too): the projection overlaps X's arrival and the partial's transfer overlaps attention and W_O.
/// Non-causal attention waits for all of X, and pieces make the kernels slower by <c>piecesOverhead</c> (bench `pieces`);
/// the coordinator, which has all of X, computes whole. <c>streamRelays</c> false models relays that send their partial
/// whole (the first version of the pieces).
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
        int fanout = 0, double pieces = 1, double piecesOverhead = 1, bool streamRelays = true, double? msPerByte = null)
    {
        // 0: as a silo chooses it for the pass (Headwise__TreeFanout unset).
        fanout = ScatterTree.FanoutFor(fanout, machines - 1, (long)tokens * modelDim * sizeof(float));
        double perByte = msPerByte ?? MsPerByte;
        double projectionFlops = 2.0 * tokens * modelDim * 3 * headDim;
        double headFlops = projectionFlops + 4.0 * tokens * tokens * headDim + 2.0 * tokens * headDim * modelDim;
        double bytes = (double)tokens * modelDim * bytesPerValue; // X, and a partial sum, are both [T × D]
        double bytesPerMs = gigabitsPerSecond * 1e9 / 8 / 1000;
        double whole = bytes * perByte + bytes / bytesPerMs;       // one tensor over one link, after its frame's a
        double piece = whole / Math.Max(1, pieces);
        double overhead = pieces > 1 ? piecesOverhead : 1;
        var share = Enumerable.Range(0, machines).Select(m => heads / machines + (m < heads % machines ? 1 : 0)).ToArray();
        // The coordinator has all of X at once and computes its groups whole.
        double ComputeMs(int machine, double flops) => share[machine] * flops / (GflopsPerMachine * 1e6) * (machine == 0 ? 1 : overhead);
        // Node 0 is the coordinator; the others are laid out as ScatterTree lays out silos. first: X's first piece is here;
        // full: all of X is. Returns when the node's partial sum (its subtree's added in) is whole, and when its attention
        // started (from then on a streaming node's partial leaves block by block).
        (double Done, double Attending) Node(int machine, int[] below, double first, double full)
        {
            double attending = Math.Max(first + ComputeMs(machine, projectionFlops), full + ComputeMs(machine, projectionFlops) / Math.Max(1, pieces));
            double own = attending + ComputeMs(machine, headFlops - projectionFlops);
            var children = Split(below, fanout);
            int k = children.Count;
            if (k == 0) return (own, attending);
            // The k children share this node's link down, and then up.
            var answers = children.Select(c =>
            {
                var (done, attends) = Node(c.Child, c.Below, first + MessageMs + k * piece, Math.Max(full + MessageMs + piece, first + MessageMs + k * whole));
                bool streams = pieces > 1 && (c.Below.Length == 0 || streamRelays);
                return (Arrives: done + MessageMs + (streams ? piece : whole), LinkFrom: streams ? attends : done);
            }).ToList();
            double linkDone = answers.Min(a => a.LinkFrom) + MessageMs + k * whole;
            return (Math.Max(own, Math.Max(answers.Max(a => a.Arrives), linkDone)), attending);
        }
        return Node(0, Enumerable.Range(1, machines - 1).ToArray(), 0, 0).Done;
    }

    // The tree the silos use (ScatterTree), over machine numbers.
    private static List<(int Child, int[] Below)> Split(int[] subtree, int fanout) =>
        ScatterTree.Children(subtree.Select(m => new SiloAssignment(m.ToString(CultureInfo.InvariantCulture), [])).ToArray(), fanout)
            .Select(c => (int.Parse(c.Child.Silo, CultureInfo.InvariantCulture), c.Below.Select(b => int.Parse(b.Silo, CultureInfo.InvariantCulture)).ToArray()))
            .ToList();
}
