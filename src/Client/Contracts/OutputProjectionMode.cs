namespace Headwise.Contracts;

/// <summary>Where the output projection of a pass's remote heads runs.</summary>
public enum OutputProjectionMode
{
    /// <summary>Each silo multiplies its heads' Z by their rows of W_O and sends one partial sum (Megatron's row-parallel layer).</summary>
    PartialSums = 0,
    /// <summary>Each silo sends its heads' Z; the coordinator concatenates and multiplies by W_O (needed for per-head outputs).</summary>
    Gathered = 1,
}
