using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>
/// <see cref="DecodeStream"/> over an Orleans client: each step is one call of the session's grain, as
/// <see cref="OrleansAttentionClient.DecodeAsync(string, FloatTensor, CancellationToken)"/> makes it (Orleans already
/// keeps one connection to the cluster, so there is no per-call setup for a stream to save). A ping has no round trip
/// to make and answers at once.
/// </summary>
internal sealed class OrleansDecodeStream(OrleansAttentionClient client, string session) : DecodeStream
{
    private HeadwiseException? _ended;

    protected override async Task<DecodeOutput> StepCoreAsync(FloatTensor input, int? expectedPosition, CancellationToken cancellationToken)
    {
        if (_ended is { } ended)
            throw new HeadwiseException(ended.Code, $"this decode stream has ended ({ended.Message}); open a new one.", ended);
        try
        {
            return await client.DecodeStep(session, input, expectedPosition, cancellationToken);
        }
        catch (HeadwiseException e)
        {
            _ended = e;
            throw;
        }
        catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested)
        {
            // As over gRPC: the first failure, a cancelled step included, ends the stream.
            _ended = new HeadwiseException(ErrorCode.Cancelled, "the caller cancelled a step.", e);
            throw;
        }
    }

    protected override Task PingCoreAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_ended is { } ended)
            throw new HeadwiseException(ended.Code, $"this decode stream has ended ({ended.Message}); open a new one.", ended);
        return Task.CompletedTask;
    }

    protected override ValueTask DisposeCoreAsync() => ValueTask.CompletedTask;
}
