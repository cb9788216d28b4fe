using Grpc.Core;
using Headwise.Contracts;
using Headwise.Silo.Gateway;
using Microsoft.Extensions.Logging.Abstractions;

namespace Headwise.Client.Tests;

/// <summary>
/// What the gateway answers when a call fails after its deadline cancelled it: the deadline, not the unavailability or
/// cancellation the pass threw on its way out (a caller told UNAVAILABLE retries a call it already gave up on; CI once saw
/// exactly that). A caller's own error keeps its code whatever the clock says.
/// </summary>
public sealed class GatewayDeadlineTranslationTests
{
    public static TheoryData<Exception> ThrownOnTheWayOut => new()
    {
        new HeadwiseException(ErrorCode.Unavailable, "the heads of layer 'm/0' kept moving during the pass; retry."),
        new OperationCanceledException(),
        new TimeoutException(),
    };

    [Theory]
    [MemberData(nameof(ThrownOnTheWayOut))]
    public async Task A_failure_after_the_deadline_is_DeadlineExceeded(Exception thrown)
    {
        var status = await Translate(thrown, deadline: DateTime.UtcNow.AddMilliseconds(-5), cancelled: true);
        Assert.Equal(StatusCode.DeadlineExceeded, status.StatusCode);
    }

    [Theory]
    [MemberData(nameof(ThrownOnTheWayOut))]
    public async Task The_same_failure_before_any_deadline_keeps_its_own_code(Exception thrown)
    {
        var status = await Translate(thrown, deadline: DateTime.MaxValue, cancelled: thrown is OperationCanceledException);
        Assert.Equal(thrown is OperationCanceledException ? StatusCode.Cancelled : StatusCode.Unavailable, status.StatusCode);
    }

    [Fact]
    public async Task A_callers_own_error_keeps_its_code_past_the_deadline()
    {
        var status = await Translate(new HeadwiseException(ErrorCode.InvalidArgument, "input.shape: bad"),
            deadline: DateTime.UtcNow.AddMilliseconds(-5), cancelled: true);
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
    }

    [Fact]
    public async Task A_stream_gets_the_same_translation_and_a_client_gone_mid_stream_is_CANCELLED()
    {
        Assert.Equal(StatusCode.NotFound, (await TranslateStream(new HeadwiseException(ErrorCode.NotFound, "session 'x' not found"), cancelled: false)).StatusCode);
        Assert.Equal(StatusCode.DeadlineExceeded, (await TranslateStream(new OperationCanceledException(), cancelled: true,
            deadline: DateTime.UtcNow.AddMilliseconds(-5))).StatusCode);
        // Reading the next message of a client that reset the stream: the call is cancelled, nothing failed here.
        Assert.Equal(StatusCode.Cancelled, (await TranslateStream(new IOException("The request stream was aborted."), cancelled: true)).StatusCode);
        // The same error on a live call is a fault of this silo's, answered without its details.
        var live = await TranslateStream(new IOException("disk"), cancelled: false);
        Assert.Equal(StatusCode.Internal, live.StatusCode);
        Assert.DoesNotContain("disk", live.Detail);
    }

    [Fact]
    public async Task A_request_stream_reset_before_the_token_is_signalled_is_CANCELLED_not_an_internal_error()
    {
        // CI saw it: the reset reached the reader as an IOException while the call's token was not yet cancelled.
        var interceptor = new GatewayErrorInterceptor(NullLogger<GatewayErrorInterceptor>.Instance);
        var context = new FixedCallContext(DateTime.MaxValue, CancellationToken.None);
        var error = await Assert.ThrowsAsync<RpcException>(() => interceptor.DuplexStreamingServerHandler<string, string>(
            new ResetReader(), null!, context, async (requests, _, _) => await requests.MoveNext(CancellationToken.None)));
        Assert.Equal(StatusCode.Cancelled, error.Status.StatusCode);
    }

    private sealed class ResetReader : IAsyncStreamReader<string>
    {
        public string Current => throw new InvalidOperationException("no message was read");

        public Task<bool> MoveNext(CancellationToken cancellationToken) =>
            Task.FromException<bool>(new IOException("The client reset the request stream."));
    }

    private static async Task<Status> TranslateStream(Exception thrown, bool cancelled, DateTime? deadline = null)
    {
        using var cancellation = new CancellationTokenSource();
        if (cancelled) await cancellation.CancelAsync();
        var interceptor = new GatewayErrorInterceptor(NullLogger<GatewayErrorInterceptor>.Instance);
        var context = new FixedCallContext(deadline ?? DateTime.MaxValue, cancellation.Token);
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            interceptor.DuplexStreamingServerHandler<string, string>(null!, null!, context, (_, _, _) => Task.FromException(thrown)));
        return error.Status;
    }

    private static async Task<Status> Translate(Exception thrown, DateTime deadline, bool cancelled)
    {
        using var cancellation = new CancellationTokenSource();
        if (cancelled) await cancellation.CancelAsync();
        var interceptor = new GatewayErrorInterceptor(NullLogger<GatewayErrorInterceptor>.Instance);
        var context = new FixedCallContext(deadline, cancellation.Token);
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            interceptor.UnaryServerHandler<string, string>("", context, (_, _) => Task.FromException<string>(thrown)));
        return error.Status;
    }

    private sealed class FixedCallContext(DateTime deadline, CancellationToken cancellationToken) : ServerCallContext
    {
        protected override string MethodCore => "/headwise.Attention/Forward";
        protected override string HostCore => "localhost";
        protected override string PeerCore => "ipv4:127.0.0.1:1";
        protected override DateTime DeadlineCore => deadline;
        protected override Metadata RequestHeadersCore => [];
        protected override CancellationToken CancellationTokenCore => cancellationToken;
        protected override Metadata ResponseTrailersCore => [];
        protected override Status StatusCore { get; set; }
        protected override WriteOptions? WriteOptionsCore { get; set; }
        protected override AuthContext AuthContextCore => new(null, []);
        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();
        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
