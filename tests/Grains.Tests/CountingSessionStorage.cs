using Headwise.Grains.Decode;
using Orleans.Storage;

namespace Headwise.Grains.Tests;

/// <summary>
/// Grain storage in a dictionary that counts the bytes each write carries and checks ETags like Redis. It keeps the
/// object it was given and hands out copies, so a writer that changed an array after writing it would be caught.
/// </summary>
internal sealed class CountingSessionStorage : IGrainStorage
{
    public Dictionary<GrainId, (object State, string ETag)> Keys { get; } = [];
    public long BytesWritten { get; private set; }
    public int Writes { get; private set; }
    /// <summary>Reads that found a stored segment (its rows read back and decoded).</summary>
    public int SegmentsRead { get; private set; }
    /// <summary>Per deleted segment, the bytes of rows the deleting coordinator still held in its state.</summary>
    public List<int> RowsHeldAtClear { get; } = [];

    private static object Copy(object state) => state switch
    {
        SessionInputSegment segment => new SessionInputSegment { Rows = segment.Rows.ToArray() },
        SessionInputPiece piece => new SessionInputPiece { Start = piece.Start, Tokens = piece.Tokens, Rows = piece.Rows.ToArray() },
        _ => throw new InvalidOperationException($"unexpected state {state.GetType()}"),
    };

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (Keys.TryGetValue(grainId, out var held))
        {
            if (held.State is SessionInputSegment) SegmentsRead++;
            grainState.State = (T)Copy(held.State);
            grainState.ETag = held.ETag;
            grainState.RecordExists = true;
        }
        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string? current = Keys.TryGetValue(grainId, out var held) ? held.ETag : null;
        if (current != grainState.ETag) throw new InconsistentStateException($"etag {grainState.ETag}, stored {current}");
        var state = Copy(grainState.State!);
        BytesWritten += state switch { SessionInputSegment segment => segment.Rows.Length, SessionInputPiece piece => piece.Rows.Length, _ => 0 };
        Writes++;
        grainState.ETag = Guid.NewGuid().ToString("N");
        grainState.RecordExists = true;
        Keys[grainId] = (state, grainState.ETag);
        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string? current = Keys.TryGetValue(grainId, out var held) ? held.ETag : null;
        if (current != grainState.ETag) throw new InconsistentStateException($"etag {grainState.ETag}, stored {current}");
        if (grainState.State is SessionInputSegment segment) RowsHeldAtClear.Add(segment.Rows.Length);
        Keys.Remove(grainId);
        grainState.RecordExists = false;
        return Task.CompletedTask;
    }
}
