using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>Keeps a silo process's output when HEADWISE_TEST_LOGS names a folder: what a failed fault test needs read.</summary>
internal static class SiloLogs
{
    public static async Task SaveAsync(SiloProcess silo, string test)
    {
        if (Environment.GetEnvironmentVariable("HEADWISE_TEST_LOGS") is { Length: > 0 } folder)
            await File.WriteAllTextAsync(Path.Combine(folder, $"{test}-silo-{silo.SiloPort}.log"), silo.Output);
    }
}
