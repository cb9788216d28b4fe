using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>
/// What a failed fault test needs read: a silo process's whole output kept when HEADWISE_TEST_LOGS names a folder, and its
/// error entries quoted in the failure itself (CI keeps no files, only the test's message).
/// </summary>
internal static class SiloLogs
{
    private const int MaxLinesPerEntry = 30;
    private const int MaxCharsPerSilo = 4000;
    private static readonly string[] LevelPrefixes = ["trce:", "dbug:", "info:", "warn:", "fail:", "crit:"];
    // The console logger writes from a queue and the test reads the process's output through a pipe: an error logged just
    // before the call failed may reach the test a moment after the failure.
    private static readonly TimeSpan LogCatchUp = TimeSpan.FromSeconds(2);

    public static async Task SaveAsync(SiloProcess silo, string test)
    {
        if (Environment.GetEnvironmentVariable("HEADWISE_TEST_LOGS") is { Length: > 0 } folder)
            await File.WriteAllTextAsync(Path.Combine(folder, $"{test}-silo-{silo.SiloPort}.log"), silo.Output);
    }

    /// <summary>
    /// Each silo's "fail:" and "crit:" entries (the console logger's error levels) with their stack traces, each silo cut
    /// to a readable length; waits briefly for an entry when none has arrived yet.
    /// </summary>
    public static async Task<string> ErrorsAsync(IReadOnlyList<SiloProcess> silos)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        string text;
        while ((text = Errors(silos)).Length == 0 && waited.Elapsed < LogCatchUp) await Task.Delay(100);
        return text.Length == 0 ? "(no error entries in the silos' logs)" : text;
    }

    private static string Errors(IEnumerable<SiloProcess> silos)
    {
        var all = new System.Text.StringBuilder();
        foreach (var silo in silos)
        {
            var text = new System.Text.StringBuilder();
            var lines = silo.Output.Split('\n');
            for (int i = 0; i < lines.Length; i++)
            {
                if (!lines[i].StartsWith("fail:", StringComparison.Ordinal) && !lines[i].StartsWith("crit:", StringComparison.Ordinal)) continue;
                text.AppendLine(lines[i]);
                // An entry runs to the next entry's level prefix.
                for (int j = i + 1; j < lines.Length && j <= i + MaxLinesPerEntry && !LevelPrefixes.Any(p => lines[j].StartsWith(p, StringComparison.Ordinal)); j++)
                    text.AppendLine(lines[j]);
            }
            if (text.Length == 0) continue;
            all.Append("silo ").Append(silo.SiloPort).AppendLine(":");
            all.Append(text.Length <= MaxCharsPerSilo ? text.ToString() : text.ToString(0, MaxCharsPerSilo) + "\n…\n");
        }
        return all.ToString();
    }
}
