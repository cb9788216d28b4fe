using Grpc.Core;
using Grpc.Core.Interceptors;
using Headwise.Contracts;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Turns every failure of a gRPC call into a status a client can act on: a <see cref="HeadwiseException"/>
/// keeps its code and message; anything else is logged and answered without leaking internals.
/// </summary>
public sealed class GatewayErrorInterceptor(ILogger<GatewayErrorInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception exception) when (exception is not RpcException)
        {
            throw Translate(exception, context);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(ClientStreamBrokenException.Watch(requestStream), context);
        }
        catch (Exception exception) when (exception is not RpcException)
        {
            throw Translate(exception, context);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, ClientStreamBrokenException.Watch(responseStream), context);
        }
        catch (Exception exception) when (exception is not RpcException)
        {
            throw Translate(exception, context);
        }
    }

    // DecodeStream: the answers written before the failure stay with the client; the failure ends the stream with its status.
    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(ClientStreamBrokenException.Watch(requestStream), ClientStreamBrokenException.Watch(responseStream), context);
        }
        catch (Exception exception) when (exception is not RpcException)
        {
            throw Translate(exception, context);
        }
    }

    private RpcException Translate(Exception exception, ServerCallContext context)
    {
        // Once the deadline has cancelled the call, a cancellation or an unavailability the pass threw on its way out (a
        // cancelled grain call, a head call given up, a retry cut short) is the deadline's doing: a caller told
        // UNAVAILABLE would retry a call it already gave up on. A caller's own error (bad input, unknown model) keeps its code.
        if (DeadlinePassed(context) && exception is OperationCanceledException or TimeoutException or SiloUnavailableException
                or OrleansMessageRejectionException or HeadwiseException { Code: ErrorCode.Unavailable })
            return new RpcException(new Status(StatusCode.DeadlineExceeded, "deadline: the call's deadline passed before the answer was ready."));
        switch (exception)
        {
            case HeadwiseException headwise:
                return new RpcException(new Status(headwise.Code.ToStatusCode(), StatusMessage.Bounded(headwise.Message)));
            // A client gone mid-stream: reading its next message fails with the transport's error, not a cancellation,
            // and the call's token may be signalled only a moment later.
            case ClientStreamBrokenException:
            case OperationCanceledException or IOException when context.CancellationToken.IsCancellationRequested:
                return new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled."));
            case TimeoutException or SiloUnavailableException or OrleansMessageRejectionException:
                logger.LogWarning(exception, "{Method}: the cluster could not serve the call", context.Method);
                return new RpcException(new Status(StatusCode.Unavailable, "the cluster could not serve the call right now; retry."));
            // Grain storage (Redis) that timed out or dropped the connection: the cluster's state is intact, the call may be retried.
            case Orleans.Persistence.Redis.RedisStorageException or StackExchange.Redis.RedisException:
                logger.LogWarning(exception, "{Method}: grain storage did not answer", context.Method);
                return new RpcException(new Status(StatusCode.Unavailable, "grain storage did not answer in time; retry."));
            default:
                logger.LogError(exception, "{Method} failed", context.Method);
                return new RpcException(new Status(StatusCode.Internal, "internal error; the silo log has the details."));
        }
    }

    // The server's deadline timer can fire a few milliseconds before the wall clock reads the deadline.
    private static bool DeadlinePassed(ServerCallContext context) =>
        context.CancellationToken.IsCancellationRequested && context.Deadline <= DateTime.UtcNow.AddMilliseconds(50);
}
