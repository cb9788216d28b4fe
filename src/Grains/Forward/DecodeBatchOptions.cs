namespace Headwise.Grains.Forward;

/// <summary>
/// How a silo batches the decode steps of different sessions of one layer (Headwise__DecodeBatching,
/// Headwise__DecodeBatchMax, Headwise__DecodeBatchMaxRows; see <see cref="StepBatcher"/>).
/// </summary>
public sealed class DecodeBatchOptions
{
    /// <summary>
    /// Small decode steps of one layer that arrive while a step of that layer computes run together as one pass over
    /// the weights; false computes every step on its own (the way to compare the two in one run).
    /// </summary>
    public bool DecodeBatching { get; set; } = true;

    /// <summary>Most steps in one batch.</summary>
    public int DecodeBatchMax { get; set; } = 64;

    /// <summary>Most new rows (sequences × tokens, over all its steps) in one batch; a step larger than this still runs, alone.</summary>
    public int DecodeBatchMaxRows { get; set; } = 1024;

    /// <summary>What is wrong with these settings, one line each.</summary>
    public IEnumerable<string> Problems()
    {
        if (DecodeBatchMax < 1) yield return $"Headwise__DecodeBatchMax is {DecodeBatchMax}; it must be at least 1.";
        if (DecodeBatchMaxRows < 1) yield return $"Headwise__DecodeBatchMaxRows is {DecodeBatchMaxRows}; it must be at least 1.";
    }
}
