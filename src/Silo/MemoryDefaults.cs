namespace Headwise.Silo;

/// <summary>
/// The memory limits a silo uses when none is configured, as fractions of its container's memory M (the cgroup
/// limit, or DOTNET_GCHeapHardLimit when smaller: <see cref="ContainerMemory"/>), each capped at the value used where there is no container limit:
/// <list type="bullet">
/// <item>Headwise__MaxUploadBytes = M/8 (at most 1 GiB): the upload is held whole, then converted, about 3 × its size;</item>
/// <item>Headwise__Sessions__CacheBytesPerSilo = M/4 (at most 2 GiB): K/V caches of the silo's head grains;</item>
/// <item>Headwise__Sessions__InputBytesPerSilo = M/8 (at most 2 GiB): the inputs decode sessions keep;</item>
/// <item>Headwise__MaxResponseBytes = M/16 (at most 512 MiB): one forward answer exists about 3 times on its way out
/// (head answers, the gathered array, the serialised message).</item>
/// <item>Headwise__PassMemoryBytes = M/4 (at most 4 GiB): what the passes coordinated on the silo hold at once
/// (<c>PassMemoryBudget</c>: three times each pass's X and answer); passes past it wait their turn.</item>
/// </list>
/// The caches and session inputs fill only as sessions decode; the rest of M is for the runtime, the head weights and
/// the parts of other silos' passes this silo computes. A 2 GiB pod gets 256 MiB, 512 MiB, 256 MiB, 128 MiB and 512 MiB.
/// An explicit setting of any of them wins.
/// </summary>
public sealed record MemoryDefaults(long MaxUploadBytes, long CacheBytesPerSilo, long InputBytesPerSilo, long MaxResponseBytes,
    long PassMemoryBytes)
{
    /// <summary>The defaults without a container limit.</summary>
    public static readonly MemoryDefaults Uncontained = new(1L << 30, 2L << 30, 2L << 30, 512L << 20, 4L << 30);

    /// <summary>Smallest value any of them gets, however small the container.</summary>
    public const long Floor = 1L << 20;

    /// <summary>The defaults for a container of <paramref name="containerBytes"/> bytes, or <see cref="Uncontained"/> for null.</summary>
    public static MemoryDefaults For(long? containerBytes)
    {
        if (containerBytes is not { } memory) return Uncontained;
        long Part(long divisor, long cap) => Math.Clamp(memory / divisor, Floor, cap);
        return new MemoryDefaults(
            Part(8, Uncontained.MaxUploadBytes),
            Part(4, Uncontained.CacheBytesPerSilo),
            Part(8, Uncontained.InputBytesPerSilo),
            Part(16, Uncontained.MaxResponseBytes),
            Part(4, Uncontained.PassMemoryBytes));
    }

    /// <summary>Each configuration key (under "Headwise") with its default.</summary>
    public IEnumerable<KeyValuePair<string, long>> Settings()
    {
        yield return new($"{SiloOptions.Section}:MaxUploadBytes", MaxUploadBytes);
        yield return new($"{SiloOptions.Section}:Sessions:CacheBytesPerSilo", CacheBytesPerSilo);
        yield return new($"{SiloOptions.Section}:Sessions:InputBytesPerSilo", InputBytesPerSilo);
        yield return new($"{SiloOptions.Section}:MaxResponseBytes", MaxResponseBytes);
        yield return new($"{SiloOptions.Section}:PassMemoryBytes", PassMemoryBytes);
    }

    /// <summary>Adds these defaults for every key <paramref name="configuration"/> does not set already.</summary>
    public void AddTo(IConfigurationManager configuration)
    {
        var missing = Settings()
            .Where(s => configuration[s.Key] is null)
            .ToDictionary(s => s.Key, s => (string?)s.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (missing.Count > 0) configuration.AddInMemoryCollection(missing);
    }
}
