namespace Headwise.Silo.Gateway;

/// <summary>
/// Shared-memory tensors for clients on this silo's machine; bound once from the "Headwise" section
/// (Headwise__SharedMemory, Headwise__SharedMemoryDirectory, Headwise__MaxSharedMemoryRegions) and checked at start.
/// </summary>
public sealed class SharedMemoryOptions
{
    /// <summary>Whether RegisterSharedMemory and Forward's input_shm/output_shm are served; off, they are FAILED_PRECONDITION.</summary>
    public bool SharedMemory { get; set; } = true;

    /// <summary>The directory whose plain files a region's key names; a tmpfs, so the pages are memory.</summary>
    public string SharedMemoryDirectory { get; set; } = "/dev/shm";

    /// <summary>Most regions registered on this silo at once; one more is RESOURCE_EXHAUSTED.</summary>
    public int MaxSharedMemoryRegions { get; set; } = 256;

    /// <summary>Every problem with these settings, each naming its Headwise__ variable; empty when usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (MaxSharedMemoryRegions < 1)
            problems.Add($"Headwise__MaxSharedMemoryRegions is {MaxSharedMemoryRegions}; it must be at least 1.");
        if (SharedMemory && string.IsNullOrWhiteSpace(SharedMemoryDirectory))
            problems.Add("Headwise__SharedMemoryDirectory is empty; name a directory (default /dev/shm) or set Headwise__SharedMemory=false.");
        return problems;
    }
}
