using Headwise.Contracts;

namespace Headwise.Grains.Forward;

/// <summary>
/// The broadcast tree of a pass: the coordinator sends X to at most <c>fanout</c> silos, each of which forwards it to
/// at most <c>fanout</c> of the silos below it, and the partial sums come back up the same tree, added at every node.
/// The coordinator's link then carries <c>fanout</c> copies of X and of the partial sum instead of one per silo.
/// With no more remote silos than the fanout, every silo is a child of the coordinator (a flat scatter).
/// </summary>
public static class ScatterTree
{
    /// <summary>The children of a node whose descendants are <paramref name="subtree"/>, each with its own descendants.</summary>
    public static IReadOnlyList<(SiloAssignment Child, SiloAssignment[] Below)> Children(IReadOnlyList<SiloAssignment> subtree, int fanout)
    {
        int count = Math.Min(Math.Max(1, fanout), subtree.Count);
        var children = new List<(SiloAssignment, SiloAssignment[])>(count);
        int start = 0;
        for (int i = 0; i < count; i++)
        {
            // Contiguous, near-equal slices: the first silo of a slice is the child, the rest its descendants.
            int size = (subtree.Count - start) / (count - i);
            children.Add((subtree[start], subtree.Skip(start + 1).Take(size - 1).ToArray()));
            start += size;
        }
        return children;
    }

    /// <summary>Levels of relays between the coordinator and its deepest silo (1 for a flat scatter, 0 for none).</summary>
    public static int Depth(int remoteSilos, int fanout)
    {
        if (remoteSilos == 0) return 0;
        var below = Children(Enumerable.Range(0, remoteSilos).Select(i => new SiloAssignment(i.ToString(System.Globalization.CultureInfo.InvariantCulture), [])).ToArray(), fanout);
        return 1 + below.Max(c => Depth(c.Below.Length, fanout));
    }
}
