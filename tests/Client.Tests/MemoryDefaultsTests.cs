using Headwise.Silo;
using Microsoft.Extensions.Configuration;

namespace Headwise.Client.Tests;

/// <summary>
/// Default memory limits follow the container: the cgroup limit is read from fake cgroup trees (v2, v1, none), the
/// defaults are fractions of it, and explicit settings win.
/// </summary>
public sealed class MemoryDefaultsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("headwise-cgroup-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Write(string relativePath, string text)
    {
        string path = Path.Combine(_root, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    [Fact]
    public void Cgroup_v2_memory_max_is_the_limit()
    {
        Write("memory.max", "2147483648\n");
        Assert.Equal(2L << 30, ContainerMemory.LimitBytes(_root));
    }

    [Fact]
    public void Cgroup_v2_max_means_no_limit()
    {
        Write("memory.max", "max\n");
        Assert.Null(ContainerMemory.LimitBytes(_root));
    }

    [Fact]
    public void Cgroup_v1_limit_in_bytes_is_the_limit()
    {
        Write("memory/memory.limit_in_bytes", "536870912\n");
        Assert.Equal(512L << 20, ContainerMemory.LimitBytes(_root));
    }

    [Fact]
    public void Cgroup_v1_unlimited_value_means_no_limit()
    {
        Write("memory/memory.limit_in_bytes", "9223372036854771712\n");
        Assert.Null(ContainerMemory.LimitBytes(_root));
    }

    [Fact]
    public void No_cgroup_files_or_garbage_mean_no_limit()
    {
        Assert.Null(ContainerMemory.LimitBytes(_root));
        Write("memory.max", "lots");
        Assert.Null(ContainerMemory.LimitBytes(_root));
    }

    [Fact]
    public void A_smaller_GC_heap_hard_limit_wins_over_the_cgroup()
    {
        Write("memory.max", (2L << 30).ToString());
        Assert.Equal(256L << 20, ContainerMemory.Budget(_root, "0x10000000"));
        Assert.Equal(2L << 30, ContainerMemory.Budget(_root, "0x100000000"));
        Assert.Equal(2L << 30, ContainerMemory.Budget(_root, "not hex"));
        Assert.Equal(2L << 30, ContainerMemory.Budget(_root, null));
    }

    [Fact]
    public void A_GC_heap_hard_limit_alone_is_the_budget()
    {
        Assert.Equal(0x8000000, ContainerMemory.Budget(_root, "8000000"));
        Assert.Null(ContainerMemory.Budget(_root, ""));
    }

    [Fact]
    public void A_2_GiB_pod_gets_defaults_that_fit_in_it()
    {
        Write("memory.max", (2L << 30).ToString());
        var defaults = MemoryDefaults.For(ContainerMemory.LimitBytes(_root));
        Assert.Equal(new MemoryDefaults(256L << 20, 512L << 20, 256L << 20, 128L << 20, 512L << 20), defaults);
        long sum = defaults.MaxUploadBytes + defaults.CacheBytesPerSilo + defaults.InputBytesPerSilo + defaults.MaxResponseBytes + defaults.PassMemoryBytes;
        Assert.True(sum < 2L << 30, $"the defaults add up to {sum} bytes of a 2 GiB pod");
    }

    [Fact]
    public void A_large_container_gets_the_uncontained_caps_and_a_tiny_one_the_floor()
    {
        Assert.Equal(MemoryDefaults.Uncontained, MemoryDefaults.For(256L << 30));
        Assert.Equal(MemoryDefaults.Uncontained, MemoryDefaults.For(null));
        var tiny = MemoryDefaults.For(4L << 20);
        Assert.All(new[] { tiny.MaxUploadBytes, tiny.CacheBytesPerSilo, tiny.InputBytesPerSilo, tiny.MaxResponseBytes, tiny.PassMemoryBytes },
            v => Assert.Equal(MemoryDefaults.Floor, v));
    }

    [Fact]
    public void Explicit_settings_win_over_derived_defaults()
    {
        var configuration = new ConfigurationManager();
        configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Headwise:MaxUploadBytes"] = "12345" });
        MemoryDefaults.For(2L << 30).AddTo(configuration);

        Assert.Equal("12345", configuration["Headwise:MaxUploadBytes"]);
        Assert.Equal((512L << 20).ToString(), configuration["Headwise:Sessions:CacheBytesPerSilo"]);
        Assert.Equal((256L << 20).ToString(), configuration["Headwise:Sessions:InputBytesPerSilo"]);
        Assert.Equal((128L << 20).ToString(), configuration["Headwise:MaxResponseBytes"]);
        Assert.Equal((512L << 20).ToString(), configuration["Headwise:PassMemoryBytes"]);
    }
}
