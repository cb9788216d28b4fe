namespace Headwise.Kernels;

/// <summary>
/// The one place that decides how kernels use threads.
/// <list type="bullet">
/// <item><c>Attend</c> runs on the calling thread: the head grains of a layer already run concurrently on a
/// silo, one per group, so splitting a head further would only make them compete for the same cores.</item>
/// <item><c>Project</c> (the coordinator's W_O, one call per forward pass) splits its rows over
/// <see cref="Environment.ProcessorCount"/> parts when the work is large enough to pay for the hand-off.</item>
/// </list>
/// </summary>
internal static class KernelParallelism
{
    /// <summary>Multiply-adds below which one thread finishes before others could be woken to help.</summary>
    public const long InlineWorkLimit = 1L << 20;

    public delegate void RowRangeBody<TState>(TState state, int start, int end);

    /// <summary>
    /// Calls <paramref name="body"/> on disjoint row ranges covering [0, rows), inline or in parallel.
    /// The state travels as an argument so a static lambda serves, and the inline path allocates nothing.
    /// </summary>
    public static void ForRowRanges<TState>(int rows, long workPerRow, TState state, RowRangeBody<TState> body)
    {
        int parts = PartCount(rows, workPerRow);
        if (parts <= 1) body(state, 0, rows);
        else ForParts(rows, parts, state, body);
    }

    // Its own method because a lambda's captures are allocated on entry to the method that declares it,
    // which would make the inline path allocate too.
    private static void ForParts<TState>(int rows, int parts, TState state, RowRangeBody<TState> body) =>
        Parallel.For(0, parts, part => body(state, RangeStart(rows, parts, part), RangeStart(rows, parts, part + 1)));

    /// <summary>How many row ranges <see cref="ForRowRanges"/> uses for this much work.</summary>
    public static int PartCount(int rows, long workPerRow) =>
        rows <= 1 || (long)rows * workPerRow <= InlineWorkLimit ? 1 : Math.Min(Environment.ProcessorCount, rows);

    private static int RangeStart(int rows, int parts, int part) => (int)((long)rows * part / parts);
}
