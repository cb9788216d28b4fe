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

    /// <summary>Remote silos a pass reaches flat when the fanout is chosen (<see cref="FanoutFor"/>).</summary>
    public const int WideFanout = 4;

    /// <summary>X from this size on travels down a binary tree past <see cref="WideFanout"/> remote silos.</summary>
    public const long NarrowFromBytes = 1 << 20;

    /// <summary>
    /// The fanout of a pass: <paramref name="configured"/> (Headwise__TreeFanout) when set, else chosen. Up to
    /// <see cref="WideFanout"/> remote silos, or for an X under <see cref="NarrowFromBytes"/> (a decode step, a short
    /// prompt), every node takes up to 4 children: depth costs a message per level. Past that, a big X goes down a binary
    /// tree: with X and the partial sums in pieces a level costs one piece's hop, while each child adds a whole copy of
    /// X and of the partial sum to its parent's link (docs/scaling.md: the OLMo-7B-like layer on 8 machines projects 69–76%
    /// with fanout 2 against 56–74% with 4, and 20–31% against 13–21% on 32; 84–87% against 86–88% on 4, hence flat there).
    /// </summary>
    public static int FanoutFor(int configured, int remoteSilos, long inputBytes) =>
        configured > 0 ? configured : remoteSilos <= WideFanout || inputBytes < NarrowFromBytes ? WideFanout : 2;

    /// <summary>Rows per piece where the silos of a pass have no relay between them and the coordinator.</summary>
    public const int PieceRows = 192;

    /// <summary>Rows per piece where X passes through relays.</summary>
    public const int RelayedPieceRows = 96;

    /// <summary>
    /// The rows per piece of a pass whose tree is <paramref name="depth"/> levels deep: <paramref name="configured"/>
    /// (Headwise__PieceRows; 0: whole) when set. Else 192, or 96 once X passes through relays: each level holds a piece
    /// before passing it on, so smaller pieces fill a deep tree sooner, at 12% of kernel time against 8% (bench `pieces`;
    /// docs/scaling.md projects the OLMo-7B-like layer on 8 machines at 75–80% with them against 69–76%).
    /// </summary>
    public static int PieceRowsFor(int? configured, int depth) => configured ?? (depth >= 2 ? RelayedPieceRows : PieceRows);

    /// <summary>Levels of relays between the coordinator and its deepest silo (1 for a flat scatter, 0 for none).</summary>
    public static int Depth(int remoteSilos, int fanout)
    {
        if (remoteSilos == 0) return 0;
        var below = Children(Enumerable.Range(0, remoteSilos).Select(i => new SiloAssignment(i.ToString(System.Globalization.CultureInfo.InvariantCulture), [])).ToArray(), fanout);
        return 1 + below.Max(c => Depth(c.Below.Length, fanout));
    }
}
