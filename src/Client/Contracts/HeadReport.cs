namespace Headwise.Contracts;

/// <summary>What one head group did for a forward pass.</summary>
public sealed record HeadReport
{
    public required int Group { get; init; }
    /// <summary>The query heads the group computed.</summary>
    public required int[] Heads { get; init; }
    /// <summary>The silo the head grain ran on.</summary>
    public required string Silo { get; init; }
    /// <summary>The kernel that computed it ("simd", "reference", …).</summary>
    public required string Kernel { get; init; }
    /// <summary>Time inside the kernel.</summary>
    public double ComputeMs { get; init; }
    /// <summary>Time of the whole call as the coordinator saw it (queueing and network included).</summary>
    public double CallMs { get; init; }
    /// <summary>Bytes of X the head's silo received over the network for this pass (shared by the heads of that silo; 0 on the coordinator's silo).</summary>
    public long InputBytes { get; init; }
    /// <summary>Bytes of this head's Z that crossed the network back to the coordinator (0 on the coordinator's silo).</summary>
    public long OutputBytes { get; init; }
    /// <summary>The pieces of rows the group was computed in while X was still arriving at its silo (and its partial sum
    /// leaving, block by block); 0 when it was computed all at once.</summary>
    public int Pieces { get; init; }
}
