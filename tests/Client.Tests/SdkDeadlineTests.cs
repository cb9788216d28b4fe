using Headwise.Contracts;

namespace Headwise.Client.Tests;

/// <summary>
/// A call past its deadline fails as DeadlineExceeded and one cancelled by its caller as OperationCanceledException;
/// neither is folded into Unavailable nor retried, and the silo serves the next call as before.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class SdkDeadlineTests(SiloFixture silo) : IAsyncLifetime
{
    private const string Model = "deadline-model";
    // Large enough that a forward takes tens of milliseconds, small enough for the fixture's 2 MiB request limit.
    private static readonly AttentionSpec Spec = new() { ModelDim = 512, HeadCount = 8 };
    private static readonly AttentionInput Input = new()
    {
        Input = new FloatTensor(Enumerable.Range(0, 3 * 256 * 512).Select(i => MathF.Sin(i * 0.001f)).ToArray(), 3, 256, 512),
        Causal = true,
    };

    public async Task InitializeAsync()
    {
        await using var client = silo.CreateGrpcClient();
        try
        {
            await client.CreateModelAsync(Model, Spec);
            var weights = WeightExporter.Export(SeededWeights.Create(Spec, seed: 7), Spec, WeightLayout.Linear, "layers.{layer}.");
            await client.UploadWeightsAsync(Model, new MemoryStream(SafetensorsWriter.ToBytes(weights)), WeightLayout.Linear, "layers.{layer}.");
        }
        catch (HeadwiseException e) when (e.Code == ErrorCode.AlreadyExists)
        {
            // another test of this class created it already
        }
        await client.ForwardAsync(Model, Input);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>
    /// Shorter than any forward of <see cref="Input"/> can be: its ~1.7 GFLOP take over 1.7 ms even at 1 TFLOP/s, far
    /// above a 2-core machine's peak. A tenth of a forward timed at start-up was used before, and CI (2026-12-02) saw a
    /// forward finish within it: the timing ran while other test assemblies loaded the machine, the test after they stopped.
    /// </summary>
    private static readonly TimeSpan ShortSpan = TimeSpan.FromMilliseconds(1);

    [Fact]
    public async Task A_deadline_shorter_than_a_forward_fails_as_DeadlineExceeded_once_without_retry()
    {
        var attempts = new AttemptCounter { InnerHandler = new SocketsHttpHandler() };
        await using var client = new GrpcAttentionClient(silo.GrpcAddress, new GrpcAttentionClientOptions
        {
            DefaultDeadline = ShortSpan,
            MaxAttempts = 5,
            HttpHandler = attempts,
        });

        var error = await Assert.ThrowsAsync<HeadwiseException>(() => client.ForwardAsync(Model, Input));
        Assert.True(error.Code == ErrorCode.DeadlineExceeded, $"expected DeadlineExceeded, got {error.Code}: {error.Message}");
        // Forward is retried on UNAVAILABLE: a deadline folded into it would have been sent again.
        Assert.InRange(attempts.Count, 0, 1);

        await AssertSiloStillAnswers();
    }

    [Fact]
    public async Task A_call_whose_start_is_aborted_once_its_deadline_passed_fails_as_DeadlineExceeded_not_Unavailable()
    {
        // What a fresh connection did on CI (2026-11-30): the deadline passed while the call was starting, its timer
        // cancelled the HTTP request, and the abort ("Error starting gRPC call. IOException: The request was aborted.")
        // reached Grpc.Net.Client before the deadline's own status did: UNAVAILABLE. This handler aborts each request
        // the instant the call's cancellation fires, on the cancelling thread, which is that race every time.
        var deadline = TimeSpan.FromMilliseconds(50);
        var aborting = new AbortedOnCancel { InnerHandler = new SocketsHttpHandler() };
        await using var client = new GrpcAttentionClient(silo.GrpcAddress, new GrpcAttentionClientOptions
        {
            DefaultDeadline = deadline,
            MaxAttempts = 5,
            HttpHandler = aborting,
        });

        var error = await Assert.ThrowsAsync<HeadwiseException>(() => client.ForwardAsync(Model, Input));
        Assert.True(error.Code == ErrorCode.DeadlineExceeded, $"expected DeadlineExceeded, got {error.Code}: {error.Message}");
        Assert.InRange(aborting.Count, 1, 1);
    }

    // Never connects; fails as an aborted request as soon as the call's token fires, continuing the caller inline.
    private sealed class AbortedOnCancel : DelegatingHandler
    {
        public int Count;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Count);
            var aborted = new TaskCompletionSource<HttpResponseMessage>();
            using (cancellationToken.Register(() => aborted.TrySetException(new IOException("The request was aborted."))))
                return await aborted.Task;
        }
    }

    [Fact]
    public async Task The_default_deadline_is_30_seconds_and_a_forward_within_it_succeeds()
    {
        Assert.Equal(TimeSpan.FromSeconds(30), new GrpcAttentionClientOptions().DefaultDeadline);
        await using var client = new GrpcAttentionClient(silo.GrpcAddress, new GrpcAttentionClientOptions());
        var output = await client.ForwardAsync(Model, Input);
        Assert.Equal(Input.Input.Shape, output.Output.Shape);
    }

    [Fact]
    public async Task A_cancelled_token_ends_a_gRPC_forward_with_OperationCanceledException_not_Unavailable()
    {
        var attempts = new AttemptCounter { InnerHandler = new SocketsHttpHandler() };
        await using var client = new GrpcAttentionClient(silo.GrpcAddress, new GrpcAttentionClientOptions { HttpHandler = attempts });

        using var cancellation = new CancellationTokenSource(ShortSpan);
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.ForwardAsync(Model, Input, cancellation.Token));
        Assert.Equal(cancellation.Token, cancelled.CancellationToken);
        Assert.InRange(attempts.Count, 0, 1);

        using var already = new CancellationTokenSource();
        await already.CancelAsync();
        var before = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.ListModelsAsync(already.Token));
        Assert.Equal(already.Token, before.CancellationToken);

        await AssertSiloStillAnswers();
    }

    [Fact]
    public async Task A_cancelled_token_ends_an_Orleans_forward_with_OperationCanceledException()
    {
        await using var client = silo.CreateOrleansClient();
        using var cancellation = new CancellationTokenSource(ShortSpan);
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.ForwardAsync(Model, Input, cancellation.Token));
        Assert.Equal(cancellation.Token, cancelled.CancellationToken);
        await AssertSiloStillAnswers();
    }

    [Fact]
    public async Task A_stream_step_past_the_deadline_is_DeadlineExceeded_and_the_session_decodes_on()
    {
        await using var patient = silo.CreateGrpcClient();
        await using var client = new GrpcAttentionClient(silo.GrpcAddress, new GrpcAttentionClientOptions { DefaultDeadline = ShortSpan });
        var session = await patient.OpenSessionAsync(Model, maxTokens: 256);
        const int prefill = 200;
        var data = Input.Input.Data.Span;
        var rows = new float[3 * prefill * 512];
        for (int b = 0; b < 3; b++) data.Slice(b * 256 * 512, prefill * 512).CopyTo(rows.AsSpan(b * prefill * 512));

        // The deadline is each step's (and the opening ping's), not the stream's: whichever passes it ends the stream.
        var error = await Assert.ThrowsAsync<HeadwiseException>(async () =>
        {
            await using var stream = await client.OpenDecodeStreamAsync(session.Id);
            await stream.StepAsync(new FloatTensor(rows, 3, prefill, 512));
        });
        Assert.True(error.Code == ErrorCode.DeadlineExceeded, $"expected DeadlineExceeded, got {error.Code}: {error.Message}");

        // The prefill ran to its end in the cluster or never started: the session answers at one of the two positions.
        var next = await patient.DecodeAsync(session.Id, new FloatTensor(new float[3 * 512], 3, 1, 512));
        Assert.Contains(next.Position, new[] { 1, prefill + 1 });
        await patient.CloseSessionAsync(session.Id);
    }

    private async Task AssertSiloStillAnswers()
    {
        await using var client = silo.CreateGrpcClient();
        var output = await client.ForwardAsync(Model, Input);
        Assert.Equal(Input.Input.Shape, output.Output.Shape);
    }

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
