using System.Globalization;

namespace Headwise.Silo;

/// <summary>
/// The memory limit of the container this process runs in, read from its cgroup: memory.max under cgroup v2,
/// memory/memory.limit_in_bytes under cgroup v1. "max" (v2), v1's "no limit" value (a page-rounded 2^63) or a file
/// that is missing or unreadable all mean no limit.
/// </summary>
public static class ContainerMemory
{
    /// <summary>Where the cgroup file system is mounted in a container.</summary>
    public const string DefaultRoot = "/sys/fs/cgroup";

    // cgroup v1 writes "no limit" as LONG_MAX rounded down to a page; any value this large is no limit.
    private const long NoLimitAbove = 1L << 60;

    /// <summary>
    /// The memory this silo may plan with: the smaller of the cgroup limit under <paramref name="root"/> and the GC heap
    /// hard limit <paramref name="heapHardLimit"/> (DOTNET_GCHeapHardLimit's text, hexadecimal as the runtime reads it),
    /// or null when neither is set.
    /// </summary>
    public static long? Budget(string root, string? heapHardLimit)
    {
        long? container = LimitBytes(root), heap = HeapHardLimit(heapHardLimit);
        return container is { } c && heap is { } h ? Math.Min(c, h) : container ?? heap;
    }

    /// <summary><see cref="Budget(string, string?)"/> for this process: the cgroup mount and its DOTNET_GCHeapHardLimit.</summary>
    public static long? Budget() => Budget(DefaultRoot, Environment.GetEnvironmentVariable("DOTNET_GCHeapHardLimit"));

    private static long? HeapHardLimit(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        string digits = text.Trim();
        if (digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) digits = digits[2..];
        return long.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long bytes) && bytes is > 0 and < NoLimitAbove
            ? bytes
            : null;
    }

    /// <summary>The limit in bytes, or null when the process has none; <paramref name="root"/> is the cgroup mount.</summary>
    public static long? LimitBytes(string root = DefaultRoot)
    {
        return Read(Path.Combine(root, "memory.max")) ?? Read(Path.Combine(root, "memory", "memory.limit_in_bytes"));
    }

    private static long? Read(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long bytes)) return null;
        return bytes is > 0 and < NoLimitAbove ? bytes : null;
    }
}
