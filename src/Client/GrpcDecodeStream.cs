using Grpc.Core;
using Headwise.Contracts;
using Proto = Headwise.V1;

namespace Headwise.Client;

/// <summary>
/// <see cref="DecodeStream"/> over one DecodeStream call: a step is one message each way on an open HTTP/2 stream. The
/// call has no deadline of its own (a stream lives as long as its session is stepped); each step and ping gets the
/// client's per-call deadline instead, and one that passes it ends the stream with <see cref="ErrorCode.DeadlineExceeded"/>.
/// </summary>
internal sealed class GrpcDecodeStream : DecodeStream
{
    /// <summary>How long Dispose waits for the server to end the stream after the client completed its side.</summary>
    private static readonly TimeSpan CloseWait = TimeSpan.FromSeconds(5);

    private readonly AsyncDuplexStreamingCall<Proto.DecodeStreamRequest, Proto.DecodeStreamResponse> _call;
    private readonly TimeSpan? _stepDeadline;
    private bool _earlierDeadlineFired;
    private CancellationTokenSource? _deadline;
    private HeadwiseException? _ended;

    private GrpcDecodeStream(AsyncDuplexStreamingCall<Proto.DecodeStreamRequest, Proto.DecodeStreamResponse> call, TimeSpan? stepDeadline)
    {
        _call = call;
        _stepDeadline = stepDeadline;
    }

    /// <summary>
    /// Opens the call and pings the session on it: an unknown session (NotFound), a missing key (Unauthenticated) or a
    /// bad id (InvalidArgument) fail here, before any step.
    /// </summary>
    public static async Task<GrpcDecodeStream> OpenAsync(Proto.Attention.AttentionClient client, string session, TimeSpan? stepDeadline,
        CancellationToken cancellationToken)
    {
        SessionIds.Validate(session);
        var stream = new GrpcDecodeStream(client.DecodeStream(), stepDeadline);
        try
        {
            await stream.RoundTrip(new Proto.DecodeStreamRequest { Session = session, Ping = true }, cancellationToken);
            return stream;
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }
    }

    protected override async Task<DecodeOutput> StepCoreAsync(FloatTensor input, int? expectedPosition, CancellationToken cancellationToken)
    {
        var request = new Proto.DecodeStreamRequest { Input = GrpcMapping.ToProto(input) };
        if (expectedPosition is int position) request.ExpectedPosition = position;
        var response = await RoundTrip(request, cancellationToken);
        if (response.Ping) throw End(new HeadwiseException(ErrorCode.Internal, "the server answered a step as a ping."));
        return GrpcMapping.FromProto(response);
    }

    protected override async Task PingCoreAsync(CancellationToken cancellationToken)
    {
        var response = await RoundTrip(new Proto.DecodeStreamRequest { Ping = true }, cancellationToken);
        if (!response.Ping) throw End(new HeadwiseException(ErrorCode.Internal, "the server answered a ping as a step."));
    }

    /// <summary>Writes one message and reads its answer, with the per-step deadline and the caller's token.</summary>
    private async Task<Proto.DecodeStreamResponse> RoundTrip(Proto.DecodeStreamRequest request, CancellationToken cancellationToken)
    {
        if (_ended is { } ended)
            throw new HeadwiseException(ended.Code, $"this decode stream has ended ({ended.Message}); open a new one.", ended);
        var deadline = StartDeadline();
        using var linked = deadline is null || !cancellationToken.CanBeCanceled
            ? null
            : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var token = linked?.Token ?? deadline?.Token ?? cancellationToken;
        try
        {
            try
            {
                await _call.RequestStream.WriteAsync(request, token);
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException or IOException && !token.IsCancellationRequested)
            {
                // The server ended the stream before this message went out (a failed step, no key): reading says why.
            }
            if (!await _call.ResponseStream.MoveNext(token))
                throw End(new HeadwiseException(ErrorCode.Internal, "the server ended the decode stream without answering."));
            return _call.ResponseStream.Current;
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            End(new HeadwiseException(ErrorCode.Cancelled, "the caller cancelled a step.", e));
            throw new OperationCanceledException("the step was cancelled by its caller; the stream has ended.", e, cancellationToken);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException && deadline is { IsCancellationRequested: true })
        {
            throw End(new HeadwiseException(ErrorCode.DeadlineExceeded,
                $"deadline: the step did not answer within {_stepDeadline!.Value.TotalSeconds:0.###} s; the stream has ended.", e));
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && _earlierDeadlineFired)
        {
            // An earlier step's deadline fired as its answer arrived (its timer could not be stopped in time) and
            // cancelled the call under this step: the stream has ended on a deadline, not on a caller's cancellation.
            throw End(new HeadwiseException(ErrorCode.DeadlineExceeded,
                $"deadline: an earlier step's deadline ({_stepDeadline?.TotalSeconds:0.###} s) passed as its answer arrived and ended the stream.", e));
        }
        catch (RpcException e)
        {
            throw End(new HeadwiseException(e.StatusCode.ToErrorCode(), e.Status.Detail, e));
        }
        finally
        {
            // A timer that has not fired is stopped here and reused by the next step.
            if (deadline is not null && !deadline.TryReset())
            {
                deadline.Dispose();
                _deadline = null;
                _earlierDeadlineFired = true;
            }
        }
    }

    private CancellationTokenSource? StartDeadline()
    {
        if (_stepDeadline is not { } span) return null;
        _deadline ??= new CancellationTokenSource();
        _deadline.CancelAfter(span);
        return _deadline;
    }

    private HeadwiseException End(HeadwiseException reason)
    {
        _ended ??= reason;
        // Whatever the server still had to say is of no use: end the call now rather than at Dispose.
        _call.Dispose();
        return reason;
    }

    protected override async ValueTask DisposeCoreAsync()
    {
        try
        {
            if (_ended is null)
            {
                // Completing our side lets the server end the stream with OK once it has answered everything sent.
                await _call.RequestStream.CompleteAsync();
                using var wait = new CancellationTokenSource(CloseWait);
                while (await _call.ResponseStream.MoveNext(wait.Token))
                {
                }
            }
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or InvalidOperationException or IOException)
        {
            // The stream ends either way: disposing the call below cancels whatever is left of it.
        }
        finally
        {
            _call.Dispose();
            _deadline?.Dispose();
        }
    }
}
