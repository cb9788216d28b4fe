using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>
/// What a failed fault test needs read: a silo process's whole output kept when HEADWISE_TEST_LOGS names a folder, and its
/// error entries quoted in the failure itself (CI keeps no files, only the test's message).
/// </summary>
internal static class SiloLogs
{
    private const int LinesPerEntry = 25;
    private const int MaxChars = 6000;

    public static async Task SaveAsync(SiloProcess silo, string test)
    {
        if (Environment.GetEnvironmentVariable("HEADWISE_TEST_LOGS") is { Length: > 0 } folder)
            await File.WriteAllTextAsync(Path.Combine(folder, $"{test}-silo-{silo.SiloPort}.log"), silo.Output);
    }

    /// <summary>Each silo's "fail:" and "crit:" log entries (the console logger's error levels), with their stack traces, cut to a readable length.</summary>
    public static string Errors(IEnumerable<SiloProcess> silos)
    {
        var text = new System.Text.StringBuilder();
        foreach (var silo in silos)
        {
            var lines = silo.Output.Split('\n');
            for (int i = 0; i < lines.Length; i++)
            {
                if (!lines[i].StartsWith("fail:", StringComparison.Ordinal) && !lines[i].StartsWith("crit:", StringComparison.Ordinal)) continue;
                text.Append("silo ").Append(silo.SiloPort).Append(": ");
                foreach (var line in lines.Skip(i).Take(LinesPerEntry)) text.AppendLine(line);
            }
        }
        if (text.Length == 0) return "(no error entries in the silos' logs)";
        return text.Length <= MaxChars ? text.ToString() : text.ToString(0, MaxChars) + "\n…";
    }
}
