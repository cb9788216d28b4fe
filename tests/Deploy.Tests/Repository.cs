using System.Diagnostics;
using System.Reflection;

namespace Headwise.DeployTests;

/// <summary>Where the repository and the built silo are, and a way to run a tool and read what it printed.</summary>
public static class Repository
{
    public static string Root => Path.GetFullPath(Metadata("RepositoryRoot"));
    public static string SiloDll => Path.GetFullPath(Metadata("SiloDll"));

    public static string PathOf(string relative) => Path.Combine(Root, relative);

    /// <summary>Runs a program to its end; a program that is not installed fails the test with how to install it.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(string program, IEnumerable<string> arguments, string installHint,
        TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Root,
        };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"'{program}' could not be started ({e.Message}); {installHint}", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout ?? TimeSpan.FromSeconds(60)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish in time.");
            }
            process.WaitForExit();
            return (process.ExitCode, stdout.Result, stderr.Result);
        }
    }

    private static string Metadata(string key) =>
        typeof(Repository).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value
        ?? throw new InvalidOperationException($"assembly metadata {key} is missing.");
}
