using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Headwise.TestSupport;

namespace Headwise.DeployTests;

/// <summary>
/// A throw-away redis-server on a free loopback port (no persistence, its directory deleted afterwards). A
/// machine without redis-server fails the test with how to install it: these tests must not pass by skipping.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    public const string InstallHint = "redis-server is not installed: apt-get install redis-server (Debian package redis-server).";

    private readonly Process _process;
    private readonly string _directory;
    private readonly StringBuilder _output = new();

    private RedisServer(Process process, int port, string directory)
    {
        _process = process;
        Port = port;
        _directory = directory;
    }

    public int Port { get; }
    public string Endpoint => $"127.0.0.1:{Port}";

    public static async Task<RedisServer> StartAsync()
    {
        var port = FreePorts.Take(1)[0];
        var directory = Directory.CreateTempSubdirectory("headwise-redis-").FullName;
        var start = new ProcessStartInfo("redis-server",
            ["--port", port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(InstallHint, e);
        }
        var redis = new RedisServer(process, port, directory);
        process.OutputDataReceived += (_, e) => redis.Append(e.Data);
        process.ErrorDataReceived += (_, e) => redis.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited) break;
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", port);
                return redis;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }
        string output;
        lock (redis._output) output = redis._output.ToString();
        await redis.DisposeAsync();
        throw new InvalidOperationException($"redis-server did not start on port {port}:\n{output}");
    }

    /// <summary>Runs redis-cli against this server and returns its raw output lines.</summary>
    public string[] Cli(params string[] arguments)
    {
        var (exit, stdout, stderr) = Repository.Run("redis-cli", ["-p", Port.ToString(), "--raw", .. arguments],
            "redis-cli is missing: apt-get install redis-server (it brings redis-tools).");
        Assert.True(exit == 0, $"redis-cli {string.Join(' ', arguments)} failed: {stderr}");
        return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // best effort
        }
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }
}
