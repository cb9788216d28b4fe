using System.Runtime.CompilerServices;
using Grpc.Core;
using Headwise.Contracts;
using Proto = Headwise.V1;

namespace Headwise.Client;

/// <summary>
/// <see cref="IAttentionClient.DecodeStreamAsync"/> over gRPC: one task writes the inputs as they come while the caller
/// reads the answers, so a step never waits for the previous answer to cross the network before it is sent. The server
/// runs the steps in the order sent and answers in that order.
/// </summary>
internal static class PipelinedDecodeStream
{
    public static async IAsyncEnumerable<DecodeOutput> RunAsync(Proto.Attention.AttentionClient client, string session,
        IAsyncEnumerable<FloatTensor> inputs, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // The writer cancels the call through this when the caller's inputs throw, so the reader stops at once.
        using var call = client.DecodeStream(cancellationToken: cancellationToken);
        using var writerFailed = new CancellationTokenSource();
        var writer = WriteAllAsync(call.RequestStream, session, inputs, writerFailed, cancellationToken);
        try
        {
            while (await NextAsync(call, writer, writerFailed.Token, cancellationToken) is { } response)
                yield return GrpcMapping.FromProto(response);
            await writer;
        }
        finally
        {
            // Left early (the consumer stopped, or a step failed): the writer may still be waiting on the inputs.
            if (!writer.IsCompleted)
            {
                writerFailed.Cancel();
                _ = writer.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            }
        }
    }

    private static async Task<Proto.DecodeStreamResponse?> NextAsync(AsyncDuplexStreamingCall<Proto.DecodeStreamRequest, Proto.DecodeStreamResponse> call,
        Task writer, CancellationToken writerFailed, CancellationToken cancellationToken)
    {
        try
        {
            // The caller's inputs threw: end the call so this read stops, then report the inputs' failure below.
            using var stop = writerFailed.Register(static state => ((IDisposable)state!).Dispose(), call);
            return await call.ResponseStream.MoveNext(cancellationToken) ? call.ResponseStream.Current : null;
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("the decode stream was cancelled by its caller.", e, cancellationToken);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException && writerFailed.IsCancellationRequested)
        {
            await writer;
            throw;
        }
        catch (RpcException e)
        {
            throw new HeadwiseException(e.StatusCode.ToErrorCode(), e.Status.Detail, e);
        }
    }

    private static async Task WriteAllAsync(IClientStreamWriter<Proto.DecodeStreamRequest> requests, string session,
        IAsyncEnumerable<FloatTensor> inputs, CancellationTokenSource failed, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, failed.Token);
        await using var enumerator = inputs.GetAsyncEnumerator(linked.Token);
        bool first = true;
        while (true)
        {
            Proto.DecodeStreamRequest request;
            try
            {
                if (!await enumerator.MoveNextAsync()) break;
                request = new Proto.DecodeStreamRequest { Input = GrpcMapping.ToProto(enumerator.Current) };
            }
            catch (Exception) when (!linked.IsCancellationRequested)
            {
                // The caller's own code failed: that is the failure the enumeration reports.
                await failed.CancelAsync();
                throw;
            }
            if (first) request.Session = session;
            first = false;
            try
            {
                await requests.WriteAsync(request, linked.Token);
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException or IOException or OperationCanceledException)
            {
                // The server ended the stream (a failed step) or the call was cancelled: the reader reports why.
                return;
            }
        }
        try
        {
            await requests.CompleteAsync();
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException or IOException or OperationCanceledException)
        {
            // As above: the reader reports why the stream ended.
        }
    }
}
