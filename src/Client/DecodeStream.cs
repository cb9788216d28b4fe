using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>
/// The steps of one decode session over one open stream (from <see cref="IAttentionClient.OpenDecodeStreamAsync"/>):
/// each <see cref="StepAsync(FloatTensor, CancellationToken)"/> is a Decode of the session, answered the same, without
/// the cost of a new call. One step or ping at a time; to keep many steps in flight use
/// <see cref="IAttentionClient.DecodeStreamAsync"/>. Dispose ends the stream (the session stays open: close it with
/// <see cref="IAttentionClient.CloseSessionAsync"/>).
/// </summary>
/// <remarks>
/// A step is never retried by the SDK: one whose answer was lost may have been applied, so a caller that wants to send it
/// again sends it with an expected position (<see cref="StepAsync(FloatTensor, int, CancellationToken)"/>), on a new
/// stream or by <see cref="IAttentionClient.DecodeAsync(string, FloatTensor, int, CancellationToken)"/>. The first failure
/// (a <see cref="HeadwiseException"/> with the step's <see cref="ErrorCode"/>, <see cref="OperationCanceledException"/> for
/// the caller's own token) ends the stream: later calls throw a <see cref="HeadwiseException"/> of the same code saying so.
/// The session itself is left as the failed step left it and can be stepped again on a new stream.
/// </remarks>
public abstract class DecodeStream : IAsyncDisposable
{
    private int _busy;
    private bool _disposed;

    /// <summary>
    /// Attention for the new tokens <paramref name="input"/> [batch, new_tokens, model_dim], causal over everything the
    /// session has seen: what <see cref="IAttentionClient.DecodeAsync(string, FloatTensor, CancellationToken)"/> answers.
    /// </summary>
    public async Task<DecodeOutput> StepAsync(FloatTensor input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        Enter();
        try
        {
            return await StepCoreAsync(input, null, cancellationToken);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>
    /// <see cref="StepAsync(FloatTensor, CancellationToken)"/> applied at most once: <paramref name="expectedPosition"/>
    /// is the session's position before this step (the previous step's <see cref="DecodeOutput.Position"/>). A mismatch
    /// is FailedPrecondition naming both positions, and nothing is applied; the same step sent again after a lost answer
    /// gets the stored answer with <see cref="DecodeOutput.Replayed"/> set.
    /// </summary>
    public async Task<DecodeOutput> StepAsync(FloatTensor input, int expectedPosition, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        Enter();
        try
        {
            return await StepCoreAsync(input, expectedPosition, cancellationToken);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>
    /// A no-op round trip on the stream, answered in order with the steps: what a step pays for the transport alone
    /// (the stream's floor, for comparing a step's latency with).
    /// </summary>
    public async Task PingAsync(CancellationToken cancellationToken = default)
    {
        Enter();
        try
        {
            await PingCoreAsync(cancellationToken);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Ends the stream after the steps answered so far; the session stays open.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await DisposeCoreAsync();
        GC.SuppressFinalize(this);
    }

    /// <summary>Runs one step; called one at a time, never after dispose.</summary>
    protected abstract Task<DecodeOutput> StepCoreAsync(FloatTensor input, int? expectedPosition, CancellationToken cancellationToken);

    /// <summary>One no-op round trip; called one at a time, never after dispose.</summary>
    protected abstract Task PingCoreAsync(CancellationToken cancellationToken);

    /// <summary>Ends the stream; called once.</summary>
    protected abstract ValueTask DisposeCoreAsync();

    private void Enter()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Interlocked.Exchange(ref _busy, 1) == 1)
            throw new InvalidOperationException(
                "a step or ping of this decode stream is still running: send one at a time (DecodeStreamAsync keeps many in flight).");
    }
}
