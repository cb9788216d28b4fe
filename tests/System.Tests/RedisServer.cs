using System.Diagnostics;
using System.Net.Sockets;
using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>A real redis-server (Debian's package) on a free loopback port, in a temporary folder, with no persistence.</summary>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _folder;

    private RedisServer(Process process, string folder, int port)
    {
        _process = process;
        _folder = folder;
        Port = port;
    }

    public int Port { get; }
    public string ConnectionString => $"127.0.0.1:{Port}";

    public static async Task<RedisServer> StartAsync()
    {
        const string binary = "/usr/bin/redis-server";
        if (!File.Exists(binary))
            throw new InvalidOperationException("redis-server is not installed; scripts/test.sh installs it (apt-get install redis-server).");
        int port = FreePorts.Take(1)[0];
        string folder = Directory.CreateTempSubdirectory("headwise-redis-").FullName;
        var process = Process.Start(new ProcessStartInfo(binary,
            ["--port", port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new RedisServer(process, folder, port);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", port);
                return server;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }
        await server.DisposeAsync();
        throw new TimeoutException("redis-server did not listen within 20 s.");
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        Directory.Delete(_folder, recursive: true);
    }
}
