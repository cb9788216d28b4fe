using Headwise.Contracts;

namespace Headwise.Grains.Forward;

/// <summary>
/// How the coordinator spreads a forward pass over silos (Headwise__WireFormat, Headwise__OutputProjection,
/// Headwise__TreeFanout, Headwise__LinkBytesPerSecond, Headwise__ComputeThreads, Headwise__PinComputeThreads, Headwise__RebalanceIdleSeconds,
/// Headwise__HedgeAfterMs, Headwise__SuspectSeconds, Headwise__PieceRows, Headwise__PiecesAlways).
/// </summary>
public sealed class ScatterOptions
{
    /// <summary>Where remote heads' W_O runs: Auto lets <c>OutputProjectionCost</c> choose per pass.</summary>
    public OutputProjectionChoice OutputProjection { get; set; } = OutputProjectionChoice.Auto;

    /// <summary>Children per node of the broadcast/reduction tree; a pass with no more remote silos than this is flat.
    /// 0 (the default): chosen per pass by <see cref="ScatterTree.FanoutFor"/>.</summary>
    public int TreeFanout { get; set; }

    /// <summary>Threads that run head kernels (Headwise__ComputeThreads); 0: one per core this process may use.</summary>
    public int ComputeThreads { get; set; }

    /// <summary>Each compute thread keeps to one CPU of the process's set (Headwise__PinComputeThreads; Linux, and only
    /// when the process may use exactly as many CPUs as it has compute threads, as with taskset or a static CPU policy;
    /// never under a bare CPU quota, where every process sees all of the machine's CPUs).</summary>
    public bool PinComputeThreads { get; set; } = true;

    /// <summary>Bytes per second one silo-to-silo message moves, for the cost model (Orleans' serialisation measured ~1.7 GB/s).</summary>
    public double LinkBytesPerSecond { get; set; } = 1.7e9;

    /// <summary>Bf16 halves the bytes of X and Z between silos for every request, not only those that ask for it.</summary>
    public WireFormat WireFormat { get; set; } = WireFormat.F32;

    /// <summary>
    /// A silo below that has not answered a forward pass after this long (or 4× the layer's recent pass time, if more)
    /// has its groups computed by the silo above, from storage (<c>HeadRescue</c>): a hung silo costs a pass this much,
    /// not the seconds membership takes to declare it dead.
    /// </summary>
    public int HedgeAfterMs { get; set; } = 1000;

    /// <summary>After a silo failed or fell behind, passes compute its groups elsewhere for this long without asking it.</summary>
    public double SuspectSeconds { get; set; } = 3;

    /// <summary>
    /// Rows per piece when a silo computes a forward pass whose X arrives on the tensor channel (Headwise__PieceRows,
    /// rounded up to 24): it projects each piece as it arrives and sends its partial sum up block by block while it
    /// computes the rest. 0 computes such passes whole, once X is in. Unset: the coordinator chooses per pass
    /// (<see cref="ScatterTree.PieceRowsFor"/>).
    /// </summary>
    public int? PieceRows { get; set; }

    /// <summary>
    /// Compute every such pass in pieces (Headwise__PiecesAlways), not only where they overlap a transfer (X still
    /// arriving, or a partial sum that can leave block by block): for tests and benchmarks of the pieces themselves.
    /// </summary>
    public bool PiecesAlways { get; set; }

    /// <summary>A layer whose heads were idle this long re-balances them when the silo set changed; 0 turns that off.</summary>
    public int RebalanceIdleSeconds { get; set; } = 10;
}

/// <summary>Where the output projection of remote heads runs.</summary>
public enum OutputProjectionChoice { Auto, PartialSums, Gathered }
