using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Headwise.Silo.Gateway;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Headwise.Scaling;

/// <summary>
/// The transport's floor under an inline forward pass: a payload of X's size sent and the same bytes sent back, with no
/// Headwise code in between, (1) over HTTP/2 between Kestrel, configured as the silo's gateway is (windows, 64 KB
/// blocks, inline socket continuations, no thread-pool spinning), and a SocketsHttpHandler configured as the SDK's, and
/// (2) over one plain TCP socket. The echo server is a child process, as a silo is. What HTTP/2 costs above TCP here is
/// a cost every inline pass pays that no change inside the silo removes.
/// </summary>
internal static class Http2Floor
{
    private const string EchoPath = "/echo";

    public static async Task RunAsync(int bytes, int repetitions, int rounds)
    {
        int httpPort = FreePort(), tcpPort = FreePort();
        using var server = StartServer(httpPort, tcpPort, bytes);
        try
        {
            var payload = new byte[bytes];
            Random.Shared.NextBytes(payload);
            var received = new byte[bytes];
            using var http = new HttpClient(new SocketsHttpHandler { EnableMultipleHttp2Connections = true, InitialHttp2StreamWindowSize = 16 << 20 });
            var echo = new Uri($"http://127.0.0.1:{httpPort}{EchoPath}");
            using var socket = await ConnectAsync(tcpPort);

            async Task<double> Http2()
            {
                long started = Stopwatch.GetTimestamp();
                using var request = new HttpRequestMessage(HttpMethod.Post, echo)
                {
                    Content = new ReadOnlyMemoryContent(payload),
                    Version = HttpVersion.Version20,
                    VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                };
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                response.EnsureSuccessStatusCode();
                await using var body = await response.Content.ReadAsStreamAsync();
                int total = 0, read;
                while ((read = await body.ReadAsync(received.AsMemory(total))) > 0) total += read;
                double ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                Check(total, bytes, payload, received);
                return ms;
            }

            async Task<double> Tcp()
            {
                long started = Stopwatch.GetTimestamp();
                await socket.SendAsync(payload);
                int total = 0;
                while (total < bytes)
                {
                    int read = await socket.ReceiveAsync(received.AsMemory(total));
                    if (read == 0) throw new InvalidOperationException("the TCP echo closed its socket.");
                    total += read;
                }
                double ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                Check(total, bytes, payload, received);
                return ms;
            }

            // Warm-up: the JIT's tier-up of both sides' paths (the server's first hundred requests run unoptimised code).
            for (int i = 0; i < 100; i++)
            {
                await Http2();
                await Tcp();
            }
            var invariant = CultureInfo.InvariantCulture;
            Console.WriteLine($"## The transport's floor: {bytes:N0} bytes sent and echoed back, median of {repetitions} (best), interleaved\n");
            Console.WriteLine("| round | HTTP/2, Kestrel ↔ SocketsHttpHandler, ms | TCP socket, ms | HTTP/2 ÷ TCP | HTTP/2 above TCP, ms |");
            Console.WriteLine("|---|---|---|---|---|");
            for (int round = 1; round <= rounds; round++)
            {
                var h2 = new List<double>();
                var tcp = new List<double>();
                for (int i = 0; i < repetitions; i++)
                {
                    h2.Add(await Http2());
                    tcp.Add(await Tcp());
                }
                h2.Sort();
                tcp.Sort();
                double h2Median = h2[h2.Count / 2], tcpMedian = tcp[tcp.Count / 2];
                Console.WriteLine(string.Create(invariant,
                    $"| {round} | {h2Median:F2} ({h2[0]:F2}) | {tcpMedian:F2} ({tcp[0]:F2}) | {h2Median / tcpMedian:F1} | {h2Median - tcpMedian:F2} |"));
            }
        }
        finally
        {
            if (!server.HasExited) server.Kill(entireProcessTree: true);
        }
    }

    /// <summary>The child process: Kestrel's echo on <paramref name="httpPort"/> (HTTP/2 only, as the gateway's port) and a
    /// plain TCP echo of <paramref name="bytes"/>-byte messages on <paramref name="tcpPort"/>, until killed.</summary>
    public static async Task ServeAsync(int httpPort, int tcpPort, int bytes)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // The gateway's transport settings (HeadwiseSilo): its block pool, inline continuations, and windows.
        builder.Services.AddSingleton<IMemoryPoolFactory<byte>, LargeBlockMemoryPoolFactory>();
        builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = true);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, httpPort, listen => listen.Protocols = HttpProtocols.Http2);
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Limits.Http2.InitialConnectionWindowSize = 32 << 20;
            kestrel.Limits.Http2.InitialStreamWindowSize = 16 << 20;
        });
        var app = builder.Build();
        app.MapPost(EchoPath, async context =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(bytes);
            try
            {
                int total = 0, read;
                while (total < bytes && (read = await context.Request.Body.ReadAsync(buffer.AsMemory(total, bytes - total))) > 0) total += read;
                context.Response.ContentLength = total;
                await context.Response.Body.WriteAsync(buffer.AsMemory(0, total));
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        });
        await app.StartAsync();
        // Listening on TCP only once Kestrel listens: the bench connects its socket first and takes that as ready.
        _ = Task.Run(() => EchoTcpAsync(tcpPort, bytes));
        await app.WaitForShutdownAsync();
    }

    private static async Task EchoTcpAsync(int port, int bytes)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        while (true)
        {
            var socket = await listener.AcceptSocketAsync();
            socket.NoDelay = true;
            _ = Task.Run(async () =>
            {
                var buffer = new byte[bytes];
                while (true)
                {
                    int total = 0;
                    while (total < bytes)
                    {
                        int read = await socket.ReceiveAsync(buffer.AsMemory(total));
                        if (read == 0) return;
                        total += read;
                    }
                    await socket.SendAsync(buffer);
                }
            });
        }
    }

    private static Process StartServer(int httpPort, int tcpPort, int bytes)
    {
        var self = typeof(Http2Floor).Assembly.Location;
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false };
        foreach (var argument in new[] { self, "http2-echo", "--http-port", $"{httpPort}", "--tcp-port", $"{tcpPort}", "--bytes", $"{bytes}" }) start.ArgumentList.Add(argument);
        // The silo's runtimeconfig sets this (Headwise.Silo.csproj); the bench's own does not.
        start.Environment["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0";
        return Process.Start(start) ?? throw new InvalidOperationException("the echo server did not start.");
    }

    private static async Task<Socket> ConnectAsync(int port)
    {
        for (int attempt = 0; ; attempt++)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(IPAddress.Loopback, port);
                return socket;
            }
            catch (SocketException) when (attempt < 100)
            {
                socket.Dispose();
                await Task.Delay(100);
            }
        }
    }

    private static void Check(int total, int bytes, byte[] sent, byte[] received)
    {
        if (total != bytes || !sent.AsSpan().SequenceEqual(received))
            throw new InvalidOperationException($"the echo returned {total} bytes that differ from the {bytes} sent.");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
