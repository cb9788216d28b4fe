using System.Diagnostics;
using System.Text;

namespace Headwise.TestSupport;

/// <summary>
/// A silo running as its own OS process (`dotnet Headwise.Silo.dll`) on free loopback ports, stopped with
/// SIGTERM like a container runtime would. Its output is kept for failure messages.
/// </summary>
public sealed class SiloProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private SiloProcess(Process process, int[] ports)
    {
        _process = process;
        SiloPort = ports[0];
        GatewayPort = ports[1];
        GrpcAddress = new Uri($"http://127.0.0.1:{ports[2]}");
        WebAddress = new Uri($"http://127.0.0.1:{ports[3]}");
    }

    public int SiloPort { get; }
    public int GatewayPort { get; }
    public Uri GrpcAddress { get; }
    public Uri WebAddress { get; }
    public string Output { get { lock (_output) return _output.ToString(); } }
    public bool HasExited => _process.HasExited;

    /// <summary>
    /// Starts the silo at <paramref name="siloDll"/>; <paramref name="environment"/> adds Headwise__* settings to the
    /// free ports chosen here.
    /// </summary>
    /// <param name="cpus">A taskset CPU list ("0", "0,1") that pins the silo to those cores, or null for any.</param>
    public static SiloProcess Start(string siloDll, IReadOnlyDictionary<string, string>? environment = null, string? cpus = null)
    {
        var ports = FreePorts.Take(4);
        string[] arguments = cpus is null ? [siloDll] : ["-c", cpus, "dotnet", siloDll];
        var start = new ProcessStartInfo(cpus is null ? "dotnet" : "taskset", arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(siloDll)!,
        };
        start.Environment["Headwise__SiloPort"] = ports[0].ToString();
        start.Environment["Headwise__GatewayPort"] = ports[1].ToString();
        start.Environment["Headwise__GrpcPort"] = ports[2].ToString();
        start.Environment["Headwise__WebPort"] = ports[3].ToString();
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
            start.Environment[key] = value;

        var process = new Process { StartInfo = start };
        var silo = new SiloProcess(process, ports);
        process.OutputDataReceived += (_, e) => silo.Append(e.Data);
        process.ErrorDataReceived += (_, e) => silo.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return silo;
    }

    public async Task WaitUntilHealthyAsync(TimeSpan? timeout = null, TimeSpan? pollEvery = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(90));
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"the silo exited with code {_process.ExitCode}:\n{Output}");
            try
            {
                if ((await http.GetAsync(new Uri(WebAddress, "/healthz"))).IsSuccessStatusCode) return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // not listening yet
            }
            await Task.Delay(pollEvery ?? TimeSpan.FromMilliseconds(200));
        }
        throw new TimeoutException($"the silo was not healthy in time:\n{Output}");
    }

    /// <summary>SIGKILL (kill -9): the silo dies at once, without leaving the cluster; as a crashed node.</summary>
    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: false);
    }

    /// <summary>The silo's process id, e.g. to read its resident memory from /proc.</summary>
    public int ProcessId => _process.Id;

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancellation = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancellation.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            // SIGTERM: the silo leaves the cluster gracefully, as in a pod shutdown.
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString()])) await kill.WaitForExitAsync();
            using var cancellation = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await _process.WaitForExitAsync(cancellation.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }
}
