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
}
