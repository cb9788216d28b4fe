using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>
/// A silo process started with a 512 MiB GC heap limit and no memory setting derives its limits from it: an answer of
/// attention weights the 2 GiB default would allow is refused at 512 MiB / 16, naming the setting, and the silo serves on.
/// </summary>
public sealed class MemoryDefaultsProcessTests
{
    [Fact]
    public async Task A_silo_under_a_512_MiB_heap_limit_refuses_answers_over_a_sixteenth_of_it()
    {
        await using var silo = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = "0x20000000" });
        await silo.WaitUntilHealthyAsync();

        // The demo model has 12 heads: at T = 1024 the attention weights are 12 × 1024² float32 = 48 MiB, over 32 MiB.
        var tooLarge = await CliProcess.RunAsync("forward", "--model", "demo", "--tokens", "1024", "--attention", "--server", silo.GrpcAddress.ToString());
        Assert.Equal(1, tooLarge.ExitCode);
        Assert.Contains("RESOURCE_EXHAUSTED", tooLarge.Error);
        Assert.Contains($"at most {512 << 20 >> 4} (Headwise__MaxResponseBytes)", tooLarge.Error);

        // 12 MiB at T = 512 fits.
        var fits = await CliProcess.RunAsync("forward", "--model", "demo", "--tokens", "512", "--attention", "--server", silo.GrpcAddress.ToString());
        Assert.True(fits.ExitCode == 0, $"exit {fits.ExitCode}\n{fits.Out}\n{fits.Error}");
        Assert.False(silo.HasExited);
    }
}
