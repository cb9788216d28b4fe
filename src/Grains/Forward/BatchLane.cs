namespace Headwise.Grains.Forward;

/// <summary>
/// One lane of a batcher (<see cref="StepBatcher"/>, <see cref="ForwardBatcher"/>): work that arrives while the lane's
/// passes are all running queues, and a pass that ends drains the queue in batches before it frees its slot. An item
/// that finds a free pass runs at once (no wait when idle); every queued item has a running pass that will take it.
/// </summary>
internal sealed class BatchLane<T> where T : class
{
    private readonly Lock _lock = new();
    private readonly LinkedList<T> _queue = new();
    private int _running;

    /// <summary>Items waiting for a batch.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock) return _queue.Count;
        }
    }

    /// <summary>True: a pass was free and <paramref name="item"/> now holds it, to run at once. False: it is queued.</summary>
    public bool Enter(T item, int passes)
    {
        lock (_lock)
        {
            if (_running < passes)
            {
                _running++;
                return true;
            }
            _queue.AddLast(item);
            return false;
        }
    }

    /// <summary>When <paramref name="token"/> fires while <paramref name="item"/> still waits, it leaves the queue and
    /// <paramref name="left"/> runs; once a batch took it, nothing happens.</summary>
    public CancellationTokenRegistration LeaveWhenCancelled(T item, CancellationToken token, Action left) =>
        token.Register(() =>
        {
            bool removed;
            lock (_lock) removed = _queue.Remove(item);
            if (removed) left();
        });

    /// <summary>After a pass: true when items are queued and the pass's slot must drain them; false frees the slot.</summary>
    public bool HasQueued()
    {
        lock (_lock)
        {
            if (_queue.Count > 0) return true;
            _running--;
            return false;
        }
    }

    /// <summary>The next batch, <paramref name="take"/>n from the queue under the lane's lock; null frees the slot.</summary>
    public List<T>? Next(Func<LinkedList<T>, List<T>> take)
    {
        lock (_lock)
        {
            if (_queue.Count == 0)
            {
                _running--;
                return null;
            }
            return take(_queue);
        }
    }
}
