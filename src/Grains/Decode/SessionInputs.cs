using Headwise.Contracts;
using Orleans.Storage;

namespace Headwise.Grains.Decode;

/// <summary>
/// A decode session's inputs in grain storage, in segments of a fixed number of tokens (<see cref="SessionInputSegment"/>,
/// one storage key each), so a step writes only the segments its tokens fall in: a bounded write per step rather than
/// the whole history (which would make a session of n steps cost O(n²) bytes written). Another silo reads them back
/// to rebuild the session's coordinator.
/// </summary>
public sealed class SessionInputs(IGrainStorage storage, string session, int batch, int modelDim, int segmentTokens)
{
    private const string StateName = "session-inputs";

    // The segments this coordinator has read or written, with their ETags; only the last one is written again.
    private readonly Dictionary<int, GrainState<SessionInputSegment>> _known = [];

    private int RowBytes => modelDim * sizeof(float);
    private int SegmentBytes => batch * segmentTokens * RowBytes;

    /// <summary>Tokens per segment so one segment of all <paramref name="batch"/> sequences holds about <paramref name="segmentBytes"/>.</summary>
    public static int TokensPerSegment(int batch, int modelDim, long segmentBytes) =>
        (int)Math.Clamp(segmentBytes / ((long)batch * modelDim * sizeof(float)), 1, 1 << 20);

    /// <summary>Stores X [B, tokens, D] of the tokens [position, position + tokens).</summary>
    public Task WriteAsync(int position, int tokens, byte[] input)
    {
        int first = position / segmentTokens, last = (position + tokens - 1) / segmentTokens;
        foreach (var stale in _known.Keys.Where(k => k < first).ToList()) _known.Remove(stale);
        return Task.WhenAll(Enumerable.Range(first, last - first + 1).Select(k => WriteSegmentAsync(k, position, tokens, input)));
    }

    private async Task WriteSegmentAsync(int index, int position, int tokens, byte[] input)
    {
        // A segment this coordinator has not seen may exist already (written by a step that was never acknowledged):
        // read it for its ETag first.
        if (!_known.TryGetValue(index, out var state))
        {
            state = new GrainState<SessionInputSegment>(new SessionInputSegment());
            _known[index] = state;
            await storage.ReadStateAsync(StateName, Key(index), state);
        }
        // A new array per write: the storage (in memory) may keep the one it was given.
        var rows = new byte[SegmentBytes];
        if (state.State?.Rows is { } held && held.Length == rows.Length) held.CopyTo(rows, 0);
        int start = index * segmentTokens;
        int from = Math.Max(position, start), to = Math.Min(position + tokens, start + segmentTokens);
        for (int s = 0; s < batch; s++)
            input.AsSpan(((s * tokens) + from - position) * RowBytes, (to - from) * RowBytes)
                .CopyTo(rows.AsSpan(((s * segmentTokens) + from - start) * RowBytes));
        state.State = new SessionInputSegment { Rows = rows };
        await storage.WriteStateAsync(StateName, Key(index), state);
    }

    /// <summary>Per sequence, the stored rows of tokens [from, to): [to − from, D] floats each.</summary>
    public async Task<List<float[]>> ReadAsync(int from, int to)
    {
        var history = Enumerable.Range(0, batch).Select(_ => new float[(to - from) * modelDim]).ToList();
        if (to <= from) return history;
        int first = from / segmentTokens, last = (to - 1) / segmentTokens;
        var states = Enumerable.Range(first, last - first + 1)
            .Select(k => (Index: k, State: new GrainState<SessionInputSegment>(new SessionInputSegment()))).ToList();
        await Task.WhenAll(states.Select(s => storage.ReadStateAsync(StateName, Key(s.Index), s.State)));
        foreach (var (index, state) in states)
        {
            var stored = state.State?.Rows ?? [];
            if (stored.Length != SegmentBytes)
                throw new HeadwiseException(ErrorCode.Internal,
                    $"session '{session}': stored input segment {index} has {stored.Length} bytes, expected {SegmentBytes}.");
            int start = index * segmentTokens;
            int a = Math.Max(from, start), b = Math.Min(to, start + segmentTokens);
            var floats = FloatBytes.AsFloats(stored);
            for (int s = 0; s < batch; s++)
                floats.Slice(((s * segmentTokens) + a - start) * modelDim, (b - a) * modelDim)
                    .CopyTo(history[s].AsSpan((a - from) * modelDim));
        }
        _known[last] = states[^1].State;
        return history;
    }

    /// <summary>Deletes the segments of tokens [0, end) and the one after (a step that was never acknowledged may have written it).</summary>
    public async Task ClearAsync(int end)
    {
        int last = end / segmentTokens;
        await Task.WhenAll(Enumerable.Range(0, last + 1).Select(async k =>
        {
            if (!_known.TryGetValue(k, out var state))
            {
                state = new GrainState<SessionInputSegment>(new SessionInputSegment());
                await storage.ReadStateAsync(StateName, Key(k), state);
            }
            if (state.RecordExists) await storage.ClearStateAsync(StateName, Key(k), state);
        }));
        _known.Clear();
    }

    // A storage key only: no grain of this type exists, nothing is activated.
    private GrainId Key(int index) => GrainId.Create("headwise-session-inputs", $"{session}/{index}");
}
