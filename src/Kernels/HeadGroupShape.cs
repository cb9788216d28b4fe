namespace Headwise.Kernels;

/// <summary>
/// The sizes of one head group: <see cref="QueryHeads"/> query heads sharing one key/value head.
/// Plain multi-head attention has groups of one query head.
/// </summary>
/// <param name="ModelDim">D, the width of a token's input row.</param>
/// <param name="HeadDim">dh, the width of one head's Q, K, V and Z.</param>
/// <param name="QueryHeads">g, the query heads of the group.</param>
public readonly record struct HeadGroupShape(int ModelDim, int HeadDim, int QueryHeads)
{
    /// <summary>g·dh: the width of the group's Q (and of its Z).</summary>
    public int QueryWidth => HeadDim * QueryHeads;
}
