using Orleans.Runtime;
using Orleans.Storage;

namespace Headwise.Grains.Tests.Weights;

/// <summary>
/// The real memory grain storage with one failure put in on purpose: once armed, the k-th write (or clear) throws, as a
/// Redis write that times out would, or cancels a caller's token instead, as a client that goes away at that moment.
/// Reads and every other write go through untouched. Counts the writes of an upload so a test can fail each in turn.
/// </summary>
internal sealed class FaultyGrainStorage(IGrainStorage inner) : IGrainStorage
{
    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        inner.ReadStateAsync(stateName, grainId, grainState);

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        StorageFaults.BeforeWrite(stateName);
        return inner.WriteStateAsync(stateName, grainId, grainState);
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        StorageFaults.BeforeWrite(stateName);
        return inner.ClearStateAsync(stateName, grainId, grainState);
    }
}

/// <summary>The one switch board of <see cref="FaultyGrainStorage"/> (the test cluster's silos share this process).</summary>
internal static class StorageFaults
{
    private static readonly Lock Gate = new();
    private static int _writes, _failAt;
    private static CancellationTokenSource? _cancelAt;

    public static int Writes { get { lock (Gate) return _writes; } }

    /// <summary>Counts writes from now on; the <paramref name="failAt"/>-th throws (0: none), or cancels <paramref name="cancel"/>.</summary>
    public static void Arm(int failAt, CancellationTokenSource? cancel = null)
    {
        lock (Gate) (_writes, _failAt, _cancelAt) = (0, failAt, cancel);
    }

    public static void Disarm() => Arm(0);

    public static void BeforeWrite(string stateName)
    {
        CancellationTokenSource? cancel;
        lock (Gate)
        {
            _writes++;
            if (_failAt == 0 || _writes != _failAt) return;
            cancel = _cancelAt;
        }
        if (cancel is null) throw new IOException($"storage write {_failAt} ({stateName}) failed on purpose.");
        cancel.Cancel();
    }
}
