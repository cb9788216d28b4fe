namespace Headwise.Grains.Forward;

/// <summary>
/// A tensor's bytes as they become ready, front to back: X as it arrives on the tensor channel, a partial sum as this
/// silo computes its blocks of rows. Readers wait for a prefix (<see cref="WaitFor"/>), so a silo can project the first
/// rows of X while the rest is on the wire, and send the first rows of its partial sum while it computes the rest
/// (issue #11's pipelining). The bytes before <see cref="Available"/> never change again.
/// </summary>
public sealed class TensorProgress
{
    private readonly Lock _lock = new();
    private readonly List<(int Bytes, TaskCompletionSource Ready)> _waiters = [];
    private int _available;
    private Exception? _failure;

    /// <param name="buffer">Exactly the tensor's bytes (from <see cref="TensorBuffers"/>, or the caller's own array).</param>
    public TensorProgress(byte[] buffer, bool complete = false)
    {
        Buffer = buffer;
        _available = complete ? buffer.Length : 0;
    }

    /// <summary>A tensor that is all there already.</summary>
    public static TensorProgress Complete(byte[] buffer) => new(buffer, complete: true);

    public byte[] Buffer { get; }

    public int Length => Buffer.Length;

    /// <summary>Bytes ready from the front.</summary>
    public int Available => Volatile.Read(ref _available);

    public bool IsComplete => Available == Length;

    /// <summary>Bytes [0, <paramref name="available"/>) are ready; wakes whoever waits for them.</summary>
    public void Advance(int available)
    {
        List<TaskCompletionSource>? ready = null;
        lock (_lock)
        {
            if (_failure is not null || available <= _available) return;
            Volatile.Write(ref _available, Math.Min(available, Length));
            for (int i = _waiters.Count - 1; i >= 0; i--)
                if (_waiters[i].Bytes <= _available)
                {
                    (ready ??= []).Add(_waiters[i].Ready);
                    _waiters.RemoveAt(i);
                }
        }
        if (ready is not null) foreach (var waiter in ready) waiter.TrySetResult();
    }

    /// <summary>The rest will never come (the sender left, a socket broke): every waiter fails with <paramref name="failure"/>.</summary>
    public void Fail(Exception failure)
    {
        List<(int, TaskCompletionSource Ready)> waiting;
        lock (_lock)
        {
            if (_failure is not null || _available == Length) return;
            _failure = failure;
            waiting = [.. _waiters];
            _waiters.Clear();
        }
        foreach (var (_, ready) in waiting) ready.TrySetException(failure);
    }

    /// <summary>Completes once bytes [0, <paramref name="bytes"/>) are ready; fails if they never will be.</summary>
    public Task WaitFor(int bytes, CancellationToken cancellationToken)
    {
        bytes = Math.Min(bytes, Length);
        if (Available >= bytes) return Task.CompletedTask;
        TaskCompletionSource ready;
        lock (_lock)
        {
            if (_available >= bytes) return Task.CompletedTask;
            if (_failure is not null) return Task.FromException(_failure);
            ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((bytes, ready));
        }
        return cancellationToken.CanBeCanceled ? ready.Task.WaitAsync(cancellationToken) : ready.Task;
    }

    /// <summary>Completes when the whole tensor is ready.</summary>
    public Task Completed(CancellationToken cancellationToken) => WaitFor(Length, cancellationToken);
}
