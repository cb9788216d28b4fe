using Headwise.Contracts;
using Orleans.Storage;

namespace Headwise.Grains.Decode;

/// <summary>
/// A decode session's inputs in grain storage, so another silo can rebuild the session's coordinator. Tokens are grouped
/// in segments of a fixed number of tokens (<see cref="SessionInputSegment"/>, one storage key each). A step that leaves
/// its segment incomplete stores only its own rows, as a <see cref="SessionInputPiece"/> in one of
/// <see cref="TailSlots"/> reused keys; the session's record lists the acknowledged pieces of the open segment (the
/// tail). A step that completes a segment, or finds the slots full, writes the segment whole and empties the tail. So a
/// one-token step writes its own bytes (the storage's serialisation and Orleans' copy of it included), and a segment's
/// bytes once per segment or per <see cref="TailSlots"/> steps, rather than the segment on every step; a rebuild reads
/// the segments and the tail's pieces in parallel.
/// </summary>
public sealed class SessionInputs(IGrainStorage storage, string session, int batch, int modelDim, int segmentTokens)
{
    /// <summary>Most pieces the open segment collects before it is written whole.</summary>
    public const int TailSlots = 32;

    private const string StateName = "session-inputs";

    // Segments and slots this coordinator has read or written, with their ETags. A segment the steps have moved past
    // keeps its ETag without its rows: a Close deletes it without reading it back first (a close at context 1024 read
    // and decoded every segment, 3 MB, only to learn their ETags).
    private readonly Dictionary<int, GrainState<SessionInputSegment>> _segments = [];
    private int _rowsKeptFrom; // segments below this one hold no rows
    private readonly Dictionary<int, GrainState<SessionInputPiece>> _slots = [];
    private int _segmentsEnd;
    // [B, S, D] bytes of the segments a next step may still write whole: the rows this coordinator has seen of them
    // (rows past the session's position belong to a step under way or one that failed).
    private readonly Dictionary<int, byte[]> _held = [];

    /// <summary>
    /// One past the last segment a step of this coordinator began to write, acknowledged or not. A step that failed may
    /// have stored segments past the session's position; the record keeps this so a Close deletes them too.
    /// </summary>
    public int SegmentsEnd => _segmentsEnd;

    private int RowBytes => modelDim * sizeof(float);
    private int SegmentBytes => batch * segmentTokens * RowBytes;

    /// <summary>Tokens per segment so one segment of all <paramref name="batch"/> sequences holds about <paramref name="segmentBytes"/>.</summary>
    public static int TokensPerSegment(int batch, int modelDim, long segmentBytes) =>
        (int)Math.Clamp(segmentBytes / ((long)batch * modelDim * sizeof(float)), 1, 1 << 20);

    /// <summary>
    /// Stores X [B, tokens, D] of the tokens [position, position + tokens) and returns the tail the session's record must
    /// list once the step counts (<paramref name="tail"/>: the one it lists now, the acknowledged pieces' first positions).
    /// </summary>
    public async Task<int[]> WriteAsync(int position, int tokens, byte[] input, int[] tail)
    {
        int first = position / segmentTokens, last = (position + tokens - 1) / segmentTokens;
        // The acknowledged tail belongs to the segment the step starts in (a tail elsewhere is never written so). Its
        // slots stay untouched until the record no longer lists them: a step that moves on to a new segment writes
        // pieces there only when nothing is listed.
        bool tailHere = tail.Length == 0 || tail[0] / segmentTokens == first;
        foreach (var stale in _held.Keys.Where(k => k < first).ToList()) _held.Remove(stale);
        for (; _rowsKeptFrom < first; _rowsKeptFrom++)
            if (_segments.TryGetValue(_rowsKeptFrom, out var passed)) passed.State = new SessionInputSegment();

        _segmentsEnd = Math.Max(_segmentsEnd, last + 1);
        int[] after = tail;
        var writes = new List<Task>(last - first + 1);
        for (int index = first; index <= last; index++)
        {
            int start = index * segmentTokens;
            int from = Math.Max(position, start), to = Math.Min(position + tokens, start + segmentTokens);
            int[] pieces = index == first && tailHere ? tail : [];
            var held = await Held(index, from, pieces);
            for (int s = 0; s < batch; s++)
                input.AsSpan(((s * tokens) + from - position) * RowBytes, (to - from) * RowBytes)
                    .CopyTo(held.AsSpan(((s * segmentTokens) + from - start) * RowBytes));
            bool piece = to < start + segmentTokens && (index == first ? tailHere && tail.Length < TailSlots : tail.Length == 0);
            if (piece)
            {
                writes.Add(WritePieceAsync(pieces.Length, from, to, position, tokens, input));
                after = [.. pieces, from];
            }
            else
            {
                // A new array per write: the storage (in memory) may keep the one it was given.
                writes.Add(WriteSegmentAsync(index, held.ToArray()));
                if (index == last) after = [];
            }
        }
        await Task.WhenAll(writes);
        return after;
    }

    // The rows of segment `index` before `from`: held from earlier steps or a rebuild, else read back.
    private async Task<byte[]> Held(int index, int from, int[] tail)
    {
        if (_held.TryGetValue(index, out var held)) return held;
        int start = index * segmentTokens;
        // A read of rows [start, from) keeps the segment's rows as the last one it read.
        if (from > start) await ReadAsync(start, from, tail);
        else _held[index] = new byte[SegmentBytes];
        return _held[index];
    }

    private async Task WritePieceAsync(int slot, int from, int to, int position, int tokens, byte[] input)
    {
        var rows = new byte[batch * (to - from) * RowBytes];
        for (int s = 0; s < batch; s++)
            input.AsSpan(((s * tokens) + from - position) * RowBytes, (to - from) * RowBytes)
                .CopyTo(rows.AsSpan(s * (to - from) * RowBytes));
        var state = await Known(_slots, slot, SlotKey(slot));
        state.State = new SessionInputPiece { Start = from, Tokens = to - from, Rows = rows };
        await storage.WriteStateAsync(StateName, SlotKey(slot), state);
    }

    private async Task WriteSegmentAsync(int index, byte[] rows)
    {
        var state = await Known(_segments, index, SegmentKey(index));
        state.State = new SessionInputSegment { Rows = rows };
        await storage.WriteStateAsync(StateName, SegmentKey(index), state);
    }

    // A key this coordinator has not seen may exist already (written by a step that was never acknowledged, or by the
    // session's coordinator before this one): it is read for its ETag first.
    private async Task<GrainState<T>> Known<T>(Dictionary<int, GrainState<T>> known, int index, GrainId key) where T : new()
    {
        if (known.TryGetValue(index, out var state)) return state;
        state = new GrainState<T>(new T());
        await storage.ReadStateAsync(StateName, key, state);
        known[index] = state;
        return state;
    }

    /// <summary>Per sequence, the stored rows of tokens [from, to): [to − from, D] floats each.</summary>
    /// <param name="tail">The acknowledged pieces' first positions the session's record lists.</param>
    public async Task<List<float[]>> ReadAsync(int from, int to, int[] tail)
    {
        var history = Enumerable.Range(0, batch).Select(_ => new float[(to - from) * modelDim]).ToList();
        if (to <= from) return history;
        int first = from / segmentTokens, last = (to - 1) / segmentTokens;
        int tailSegment = tail.Length > 0 ? tail[0] / segmentTokens : -1;
        if (tail.Length > 0 && (tailSegment != last || tail[^1] >= to))
            throw new HeadwiseException(ErrorCode.Internal,
                $"session '{session}': its record lists stored input pieces from {tail[0]} to {tail[^1]}, outside the last segment of tokens [{from}, {to}).");
        var segments = Enumerable.Range(first, last - first + 1)
            .Select(k => (Index: k, State: new GrainState<SessionInputSegment>(new SessionInputSegment()))).ToList();
        var pieces = Enumerable.Range(0, tail.Length).Select(_ => new GrainState<SessionInputPiece>(new SessionInputPiece())).ToList();
        await Task.WhenAll(segments.Select(s => storage.ReadStateAsync(StateName, SegmentKey(s.Index), s.State))
            .Concat(pieces.Select((p, slot) => storage.ReadStateAsync(StateName, SlotKey(slot), p))));
        foreach (var (index, state) in segments)
        {
            int start = index * segmentTokens;
            int a = Math.Max(from, start), b = Math.Min(to, start + segmentTokens);
            var rows = new byte[SegmentBytes];
            var stored = state.State?.Rows ?? [];
            // The tail's segment needs its stored rows only below the first piece.
            bool needed = index != tailSegment || a < tail[0];
            if (stored.Length == SegmentBytes) stored.CopyTo(rows, 0);
            else if (needed)
                throw new HeadwiseException(ErrorCode.Internal,
                    $"session '{session}': stored input segment {index} has {stored.Length} bytes, expected {SegmentBytes}.");
            if (index == tailSegment) Overlay(rows, start, tail, pieces, to);
            var floats = FloatBytes.AsFloats(rows);
            for (int s = 0; s < batch; s++)
                floats.Slice(((s * segmentTokens) + a - start) * modelDim, (b - a) * modelDim)
                    .CopyTo(history[s].AsSpan((a - from) * modelDim));
            if (index == last)
            {
                _held[index] = rows;
                _segments[index] = state;
            }
            else
            {
                state.State = new SessionInputSegment();
                _segments[index] = state;
            }
        }
        for (int slot = 0; slot < pieces.Count; slot++) _slots[slot] = pieces[slot];
        return history;
    }

    // The tail's pieces over the stored segment: each must be the one the record lists, end to end up to `to`.
    private void Overlay(byte[] rows, int start, int[] tail, List<GrainState<SessionInputPiece>> pieces, int to)
    {
        for (int slot = 0; slot < tail.Length; slot++)
        {
            var piece = pieces[slot].State;
            int end = slot + 1 < tail.Length ? tail[slot + 1] : to;
            if (piece is null || piece.Start != tail[slot] || piece.Start + piece.Tokens != end || piece.Rows.Length != batch * piece.Tokens * RowBytes)
                throw new HeadwiseException(ErrorCode.Internal,
                    $"session '{session}': stored input piece {slot} holds tokens from {piece?.Start} ({piece?.Tokens} tokens, {piece?.Rows.Length} bytes), " +
                    $"expected [{tail[slot]}, {end}) of {batch} sequences.");
            for (int s = 0; s < batch; s++)
                piece.Rows.AsSpan(s * piece.Tokens * RowBytes, piece.Tokens * RowBytes)
                    .CopyTo(rows.AsSpan(((s * segmentTokens) + piece.Start - start) * RowBytes));
        }
    }

    /// <summary>
    /// Deletes the segments of tokens [0, end) and the one after, and every segment below <paramref name="segmentsEnd"/>
    /// or written by this coordinator (steps that were never acknowledged may have written them), and the tail slots
    /// 0 … <paramref name="slotsUsed"/> (the most the record ever listed, and the one after).
    /// </summary>
    /// <param name="rewrittenToo">
    /// Also delete keys another coordinator of the session wrote since this one learnt their ETags: only when the
    /// session itself ends (a Close). A failed step of a coordinator that was cut off leaves the newer one's keys alone.
    /// </param>
    public async Task ClearAsync(int end, int slotsUsed, int segmentsEnd = 0, bool rewrittenToo = true)
    {
        int last = Math.Max(end / segmentTokens, Math.Max(segmentsEnd, _segmentsEnd) - 1);
        var segments = Enumerable.Range(0, last + 1).Select(k => Clear(_segments, k, SegmentKey(k), rewrittenToo));
        var slots = Enumerable.Range(0, Math.Min(slotsUsed + 1, TailSlots)).Select(slot => Clear(_slots, slot, SlotKey(slot), rewrittenToo));
        await Task.WhenAll(segments.Concat(slots));
        _segments.Clear();
        _rowsKeptFrom = 0;
        _segmentsEnd = 0;
        _slots.Clear();
        _held.Clear();
    }

    private async Task Clear<T>(Dictionary<int, GrainState<T>> known, int index, GrainId key, bool rewrittenToo) where T : new()
    {
        if (!known.TryGetValue(index, out var state))
        {
            state = new GrainState<T>(new T());
            await storage.ReadStateAsync(StateName, key, state);
        }
        if (!state.RecordExists) return;
        try
        {
            await storage.ClearStateAsync(StateName, key, state);
        }
        catch (InconsistentStateException)
        {
            if (!rewrittenToo) return; // another coordinator's key now
            // Another coordinator of the session (a rebuild, while this one was cut off) wrote the key since this one
            // learnt its ETag. The session is closing whoever wrote it: delete what is there now, or Close would fail
            // on the same stale ETag at every retry.
            var current = new GrainState<T>(new T());
            await storage.ReadStateAsync(StateName, key, current);
            if (current.RecordExists) await storage.ClearStateAsync(StateName, key, current);
        }
    }

    // Storage keys only: no grain of these types exists, nothing is activated.
    private GrainId SegmentKey(int index) => GrainId.Create("headwise-session-inputs", $"{session}/{index}");
    private GrainId SlotKey(int slot) => GrainId.Create("headwise-session-inputs", $"{session}/tail/{slot}");
}
