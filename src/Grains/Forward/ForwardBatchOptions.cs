namespace Headwise.Grains.Forward;

/// <summary>
/// How a silo batches small forward passes of one layer that arrive together (Headwise__ForwardBatching,
/// Headwise__ForwardBatchTakesRows, Headwise__ForwardBatchMaxRows, Headwise__ForwardBatchPasses; see <see cref="ForwardBatcher"/>).
/// </summary>
public sealed class ForwardBatchOptions
{
    /// <summary>
    /// Small forwards of one layer, token count and mask that arrive while one of them runs go together as one pass (their
    /// sequences side by side in the batch); false runs every forward on its own.
    /// </summary>
    public bool ForwardBatching { get; set; } = true;

    /// <summary>
    /// Most rows (sequences × tokens) of a forward that may join a batch; a larger one runs on its own. On the 2-core dev
    /// machine batches won at 16 and 32 tokens and lost at 64 and 128, where a pass is bound by arithmetic rather than by
    /// reading the weights and its messages, and a batch only takes away the overlap of separate passes
    /// (docs/performance.md, "Forwards batched").
    /// </summary>
    public int ForwardBatchTakesRows { get; set; } = 32;

    /// <summary>Most rows in one batched pass.</summary>
    public int ForwardBatchMaxRows { get; set; } = 1024;

    /// <summary>
    /// Passes of one lane that run at once before the next forwards queue for a batch: with two, one pass computes while
    /// the other's X and Y cross the gateway, as unbatched forwards overlap.
    /// </summary>
    public int ForwardBatchPasses { get; set; } = 2;

    /// <summary>What is wrong with these settings, one line each.</summary>
    public IEnumerable<string> Problems()
    {
        if (ForwardBatchPasses < 1) yield return $"Headwise__ForwardBatchPasses is {ForwardBatchPasses}; it must be at least 1.";
        if (ForwardBatchTakesRows < 1) yield return $"Headwise__ForwardBatchTakesRows is {ForwardBatchTakesRows}; it must be at least 1.";
        if (ForwardBatchMaxRows < 1) yield return $"Headwise__ForwardBatchMaxRows is {ForwardBatchMaxRows}; it must be at least 1.";
    }
}
