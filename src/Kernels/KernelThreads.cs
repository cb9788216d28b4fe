namespace Headwise.Kernels;

/// <summary>How the kernels may use threads from the thread that calls them.</summary>
public static class KernelThreads
{
    [ThreadStatic] private static bool t_ownThreadOnly;

    /// <summary>
    /// Whether kernels called on this thread stay on it (no <c>Project</c> split over the kernel's helper threads). A
    /// host that runs kernels on threads of its own, one per core, sets it on them and splits big calls itself: a helper
    /// woken from sleep lands wherever the operating system puts it, and on a virtualised host that was often the caller's
    /// own core (the silo's W_O took twice its best time on the median pass).
    /// </summary>
    public static bool OwnThreadOnly
    {
        get => t_ownThreadOnly;
        set => t_ownThreadOnly = value;
    }

    /// <summary>
    /// Calls <paramref name="body"/> for 0..count−1, on the calling thread and whichever of the kernels' parked helper
    /// threads wake in time to take an item: the caller waits only for items a helper has started, never for a helper
    /// still asleep. <c>Parallel.For</c> on the thread pool waits for the replica task it queued to run, even when the
    /// caller has done every item; on the dev VM a woken thread waited 3 ms for a CPU in one wake-up out of ten, so a
    /// decode step of a fraction of a millisecond paid that often. Runs everything inline under
    /// <see cref="OwnThreadOnly"/> or while another call holds the helpers.
    /// </summary>
    /// <exception cref="AggregateException">The first exception a call of <paramref name="body"/> threw.</exception>
    public static void For(int count, Action<int> body)
    {
        try
        {
            KernelParallelism.ForRowRanges(count, KernelParallelism.InlineWorkLimit, body, RunRange,
                alignment: 1, chunksPerThread: Math.Max(1, count));
        }
        catch (Exception failure) when (failure is not AggregateException)
        {
            // The inline path (helpers busy, or OwnThreadOnly) throws the item's own exception; the helpers' path wraps
            // it. Callers see one shape whichever path ran.
            throw new AggregateException(failure);
        }
    }

    // A failing item must not cost the items after it in the same range: inline, the range is every item.
    private static void RunRange(Action<int> body, int start, int end)
    {
        Exception? first = null;
        for (int i = start; i < end; i++)
        {
            try
            {
                body(i);
            }
            catch (Exception failure)
            {
                first ??= failure;
            }
        }
        if (first is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
    }
}
