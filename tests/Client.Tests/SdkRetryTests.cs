using System.Diagnostics;
using Headwise.Contracts;
using Headwise.TestSupport;

namespace Headwise.Client.Tests;

/// <summary>
/// The gRPC SDK retries idempotent calls (Forward, GetModel, ListModels) on UNAVAILABLE with exponential backoff,
/// and never retries calls that change the cluster.
/// </summary>
public sealed class SdkRetryTests
{
    [Fact]
    public async Task Idempotent_calls_are_retried_with_backoff_and_changes_are_not()
    {
        // Nothing listens on this port: every attempt fails with UNAVAILABLE at once. (HttpClientHandler, not
        // SocketsHttpHandler: with the latter gRPC's balancer fails the call before it reaches the counting handler.)
        var nowhere = new Uri($"http://127.0.0.1:{FreePorts.Take(1)[0]}");
        var attempts = new AttemptCounter { InnerHandler = new HttpClientHandler() };
        await using var client = new GrpcAttentionClient(nowhere, new GrpcAttentionClientOptions
        {
            ApiKey = null,
            MaxAttempts = 4,
            InitialBackoff = TimeSpan.FromMilliseconds(100),
            MaxBackoff = TimeSpan.FromSeconds(1),
            HttpHandler = attempts,
        });

        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<HeadwiseException>(() => client.ListModelsAsync());
        Assert.Equal(ErrorCode.Unavailable, error.Code);
        Assert.Equal(4, attempts.Count);
        // gRPC's backoff is random in [0, min(initial × 2^n, max)): three waits average about 350 ms, so any
        // delay at all shows that the attempts were spaced, not sent back to back.
        Assert.True(clock.Elapsed > TimeSpan.FromMilliseconds(20), $"4 attempts took {clock.Elapsed.TotalMilliseconds:F0} ms");

        attempts.Count = 0;
        await Assert.ThrowsAsync<HeadwiseException>(() => client.GetModelAsync("m"));
        Assert.Equal(4, attempts.Count);

        // Forward is retried by the client itself, sending the same request again (no channel-side copy of it).
        attempts.Count = 0;
        clock.Restart();
        var forward = await Assert.ThrowsAsync<HeadwiseException>(() => client.ForwardAsync("m", Input));
        Assert.Equal(ErrorCode.Unavailable, forward.Code);
        Assert.Equal(4, attempts.Count);
        Assert.True(clock.Elapsed > TimeSpan.FromMilliseconds(20), $"4 forward attempts took {clock.Elapsed.TotalMilliseconds:F0} ms");

        attempts.Count = 0;
        await Assert.ThrowsAsync<HeadwiseException>(() => client.CreateModelAsync("m", new AttentionSpec { ModelDim = 64, HeadCount = 4 }));
        Assert.Equal(1, attempts.Count);

        attempts.Count = 0;
        await Assert.ThrowsAsync<HeadwiseException>(() => client.DeleteModelAsync("m"));
        Assert.Equal(1, attempts.Count);
    }

    [Fact]
    public async Task MaxAttempts_of_one_turns_retries_off()
    {
        var nowhere = new Uri($"http://127.0.0.1:{FreePorts.Take(1)[0]}");
        var attempts = new AttemptCounter { InnerHandler = new HttpClientHandler() };
        await using var client = new GrpcAttentionClient(nowhere, new GrpcAttentionClientOptions { MaxAttempts = 1, HttpHandler = attempts });
        await Assert.ThrowsAsync<HeadwiseException>(() => client.ListModelsAsync());
        Assert.Equal(1, attempts.Count);
        attempts.Count = 0;
        await Assert.ThrowsAsync<HeadwiseException>(() => client.ForwardAsync("m", Input));
        Assert.Equal(1, attempts.Count);
    }

    private static readonly AttentionInput Input = new() { Input = new FloatTensor(new float[2 * 64], 1, 2, 64) };

    private sealed class AttemptCounter : DelegatingHandler
    {
        public int Count;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Count);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
