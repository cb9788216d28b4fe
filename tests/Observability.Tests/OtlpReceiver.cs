using Headwise.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Headwise.Observability.Tests;

/// <summary>
/// Stands in for an OTLP collector (Jaeger, Tempo, Aspire): it accepts OTLP/HTTP protobuf posts on a free port
/// and keeps their bodies, so a test can see what a silo configured only through OTEL_* settings sends.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly List<(string Path, byte[] Body)> _posts = [];

    private OtlpReceiver(WebApplication app) => _app = app;

    public Uri Endpoint { get; private set; } = null!;

    public static async Task<OtlpReceiver> Start()
    {
        int port = FreePorts.Take(1)[0];
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        var app = builder.Build();
        var receiver = new OtlpReceiver(app) { Endpoint = new Uri($"http://127.0.0.1:{port}") };
        app.MapPost("/v1/{signal}", async (HttpContext context, string signal) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            lock (receiver._posts) receiver._posts.Add(($"/v1/{signal}", body.ToArray()));
            // An empty ExportTraceServiceResponse / ExportMetricsServiceResponse.
            return Results.Bytes([], "application/x-protobuf");
        });
        await app.StartAsync();
        return receiver;
    }

    /// <summary>The bodies of every post to <paramref name="path"/> so far.</summary>
    public IReadOnlyList<byte[]> Posts(string path)
    {
        lock (_posts) return _posts.Where(p => p.Path == path).Select(p => p.Body).ToList();
    }

    /// <summary>Waits until some post to <paramref name="path"/> holds every one of <paramref name="needles"/>.</summary>
    public async Task<byte[]> WaitForPost(string path, params byte[][] needles)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            lock (_posts)
            {
                foreach (var (postPath, body) in _posts)
                    if (postPath == path && needles.All(n => body.AsSpan().IndexOf(n) >= 0))
                        return body;
            }
            if (DateTime.UtcNow > deadline)
            {
                lock (_posts)
                    throw new TimeoutException($"no post to {path} held what was expected within 15 s; posts: " +
                        string.Join(", ", _posts.Select(p => $"{p.Path} ({p.Body.Length} B)")));
            }
            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
