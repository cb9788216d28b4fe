using System.Diagnostics;
using System.Text;

namespace Headwise.DeployTests;

/// <summary>
/// The silo as a container would run it: `dotnet Headwise.Silo.dll` with exactly the environment it is given
/// (inherited Headwise__, ORLEANS_, POD_, OTEL_ and KUBERNETES_ variables removed first), stopped with SIGTERM
/// as the kubelet does. Its output is kept for failure messages.
/// </summary>
public sealed class PodProcess : IAsyncDisposable
{
    private static readonly string[] s_scrubbed = ["Headwise__", "Headwise:", "ORLEANS_", "POD_", "OTEL_", "KUBERNETES_"];

    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private PodProcess(Process process, string name, IReadOnlyDictionary<string, string> environment)
    {
        _process = process;
        Name = name;
        Environment = environment;
        GrpcAddress = new Uri($"http://127.0.0.1:{environment["Headwise__GrpcPort"]}");
        WebAddress = new Uri($"http://127.0.0.1:{environment["Headwise__WebPort"]}");
        SiloPort = int.Parse(environment["Headwise__SiloPort"]);
    }

    public string Name { get; }
    public IReadOnlyDictionary<string, string> Environment { get; }
    public Uri GrpcAddress { get; }
    public Uri WebAddress { get; }
    public int SiloPort { get; }
    public string Output { get { lock (_output) return _output.ToString(); } }

    public static PodProcess Start(string name, IReadOnlyDictionary<string, string> environment)
    {
        var start = new ProcessStartInfo("dotnet", [Repository.SiloDll])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(Repository.SiloDll)!,
        };
        foreach (var key in start.Environment.Keys.Where(k => s_scrubbed.Any(p => k.StartsWith(p, StringComparison.OrdinalIgnoreCase))).ToList())
            start.Environment.Remove(key);
        foreach (var (key, value) in environment)
            start.Environment[key] = value;

        var process = new Process { StartInfo = start };
        var pod = new PodProcess(process, name, environment);
        process.OutputDataReceived += (_, e) => pod.Append(e.Data);
        process.ErrorDataReceived += (_, e) => pod.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return pod;
    }

    public async Task WaitUntilHealthyAsync(TimeSpan? timeout = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(90));
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"{Name} exited with code {_process.ExitCode}:\n{Output}");
            try
            {
                if ((await http.GetAsync(new Uri(WebAddress, "/healthz"))).IsSuccessStatusCode) return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // not listening yet
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"{Name} was not healthy in time:\n{Output}");
    }

    /// <summary>SIGTERM, as the kubelet sends after preStop; returns the exit code, or null if it outlived <paramref name="timeout"/>.</summary>
    public async Task<int?> TerminateAsync(TimeSpan timeout)
    {
        if (_process.HasExited) return _process.ExitCode;
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString()])) await kill.WaitForExitAsync();
        using var cancellation = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancellation.Token);
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (await TerminateAsync(TimeSpan.FromSeconds(30)) is null)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }
}
