using Headwise.Grains.Decode;
using Orleans.Storage;

namespace Headwise.Grains.Tests;

/// <summary>
/// A session's inputs in storage segments: what is read back is what was written, a one-token step writes one segment
/// whatever the session's length (no O(n²) bytes over a session), and clearing leaves no key behind.
/// </summary>
public sealed class SessionInputsTests
{
    /// <summary>
    /// Grain storage in a dictionary that counts the bytes each write carries and checks ETags like Redis. It keeps the
    /// object it was given and hands out copies, so a writer that changed an array after writing it would be caught.
    /// </summary>
    private sealed class CountingStorage : IGrainStorage
    {
        public Dictionary<GrainId, (object State, string ETag)> Keys { get; } = [];
        public long BytesWritten { get; private set; }
        public int Writes { get; private set; }
        /// <summary>Reads that found a stored segment (its rows read back and decoded).</summary>
        public int SegmentsRead { get; private set; }

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
            Keys.Remove(grainId);
            grainState.RecordExists = false;
            return Task.CompletedTask;
        }
    }

    private const int Batch = 2, ModelDim = 8, SegmentTokens = 4;
    private const int RowBytes = ModelDim * sizeof(float);
    private const int SegmentBytes = Batch * SegmentTokens * RowBytes;

    // X [B, tokens, D] of tokens [start, start + tokens): row (s, p) holds s·1000 + p + column/100.
    private static float[] Rows(int start, int tokens) =>
        Enumerable.Range(0, Batch * tokens * ModelDim)
            .Select(i => (i / (tokens * ModelDim)) * 1000f + start + (i / ModelDim % tokens) + (i % ModelDim) / 100f).ToArray();

    private static byte[] Input(int start, int tokens) => Contracts.FloatBytes.ToBytes(Rows(start, tokens));

    private static void AssertHistory(List<float[]> history, int from, int to)
    {
        var expected = Rows(from, to - from);
        for (int s = 0; s < Batch; s++)
            Assert.Equal(expected.AsSpan(s * (to - from) * ModelDim, (to - from) * ModelDim).ToArray(), history[s]);
    }

    [Fact]
    public async Task One_token_steps_write_their_own_rows_and_a_segment_once_it_is_complete_and_read_back_exactly()
    {
        var storage = new CountingStorage();
        Assert.Equal(SegmentTokens, SessionInputs.TokensPerSegment(Batch, ModelDim, SegmentBytes));
        var inputs = new SessionInputs(storage, "s1", Batch, ModelDim, SegmentTokens);
        const int tokens = 22;
        int[] tail = [];
        for (int p = 0; p < tokens; p++)
        {
            long before = storage.BytesWritten;
            tail = await inputs.WriteAsync(p, 1, Input(p, 1), tail);
            // A step inside its segment stores its own rows; the one that completes the segment stores the segment.
            bool completes = (p + 1) % SegmentTokens == 0;
            Assert.Equal(completes ? SegmentBytes : Batch * RowBytes, storage.BytesWritten - before);
            Assert.Equal(completes ? [] : Enumerable.Range(p / SegmentTokens * SegmentTokens, p % SegmentTokens + 1).ToArray(), tail);
        }
        // A seven-token step from 22 completes the segments of 20–23 (with its two pieces) and 24–27, and writes 28's
        // whole too: its tail slots are still listed by the record until the step counts.
        long beforeLong = storage.BytesWritten;
        Assert.Equal([20, 21], tail);
        tail = await inputs.WriteAsync(tokens, 7, Input(tokens, 7), tail);
        Assert.Equal(3 * SegmentBytes, storage.BytesWritten - beforeLong);
        Assert.Empty(tail);

        // Another coordinator (a rebuild on another silo) reads what was written, from any start.
        var rebuilt = new SessionInputs(storage, "s1", Batch, ModelDim, SegmentTokens);
        foreach (int from in new[] { 0, 6, 27, 28 })
            AssertHistory(await rebuilt.ReadAsync(from, tokens + 7, tail), from, tokens + 7);
        // It goes on from what it read (ETags known, the open segment's rows held), then clears every key.
        tail = await rebuilt.WriteAsync(tokens + 7, 1, Input(tokens + 7, 1), tail);
        Assert.Equal([29], tail);
        AssertHistory(await rebuilt.ReadAsync(0, tokens + 8, tail), 0, tokens + 8);
        tail = await rebuilt.WriteAsync(tokens + 8, 3, Input(tokens + 8, 3), tail);
        Assert.Empty(tail);
        AssertHistory(await new SessionInputs(storage, "s1", Batch, ModelDim, SegmentTokens).ReadAsync(0, tokens + 11, tail), 0, tokens + 11);
        await rebuilt.ClearAsync(tokens + 11, slotsUsed: 3);
        Assert.Empty(storage.Keys);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_close_deletes_the_segments_it_wrote_or_read_without_reading_them_back(bool rebuilt)
    {
        var storage = new CountingStorage();
        var inputs = new SessionInputs(storage, "s4", Batch, ModelDim, SegmentTokens);
        const int tokens = 23; // segments 0–4 whole, 20–22 as pieces of segment 5
        int[] tail = [];
        for (int p = 0; p < tokens; p++) tail = await inputs.WriteAsync(p, 1, Input(p, 1), tail);
        if (rebuilt)
        {
            // Another coordinator that read the history back knows every segment it read.
            inputs = new SessionInputs(storage, "s4", Batch, ModelDim, SegmentTokens);
            AssertHistory(await inputs.ReadAsync(0, tokens, tail), 0, tokens);
        }

        int read = storage.SegmentsRead;
        await inputs.ClearAsync(tokens, slotsUsed: tail.Length);
        Assert.Empty(storage.Keys);
        Assert.Equal(read, storage.SegmentsRead);
    }

    [Fact]
    public async Task A_segment_whose_tail_slots_are_full_is_written_whole_and_its_tail_starts_again()
    {
        const int longSegment = 2 * SessionInputs.TailSlots + 8;
        var storage = new CountingStorage();
        var inputs = new SessionInputs(storage, "s3", Batch, ModelDim, longSegment);
        int[] tail = [];
        int most = 0, whole = 0;
        for (int p = 0; p < longSegment + 3; p++)
        {
            long before = storage.BytesWritten;
            tail = await inputs.WriteAsync(p, 1, Input(p, 1), tail);
            if (storage.BytesWritten - before == Batch * longSegment * RowBytes) whole++;
            else Assert.Equal(Batch * RowBytes, storage.BytesWritten - before);
            most = Math.Max(most, tail.Length);
        }
        Assert.Equal(SessionInputs.TailSlots, most);
        // Full after 32 pieces (token 32 written whole), again after 32 more (65), then the segment's end (71).
        Assert.Equal(3, whole);
        Assert.Equal([longSegment, longSegment + 1, longSegment + 2], tail);
        AssertHistory(await new SessionInputs(storage, "s3", Batch, ModelDim, longSegment).ReadAsync(0, longSegment + 3, tail), 0, longSegment + 3);
        await inputs.ClearAsync(longSegment + 3, most);
        Assert.Empty(storage.Keys);
    }

    [Fact]
    public async Task Rows_written_by_a_step_that_was_never_acknowledged_are_overwritten_and_the_listed_tail_still_reads_back()
    {
        var storage = new CountingStorage();
        var lost = new SessionInputs(storage, "s2", Batch, ModelDim, SegmentTokens);
        int[] tail = await lost.WriteAsync(0, 4, Input(0, 4), []);
        tail = await lost.WriteAsync(4, 1, Input(4, 1), tail);
        Assert.Equal([4], tail);
        // Its coordinator stored tokens 5–9 (the rest of segment 4–7 whole, and 8–9 of the next one) and died before
        // the step counted: the session is at position 5 and its record still lists the piece of token 4.
        await lost.WriteAsync(5, 5, Contracts.FloatBytes.ToBytes(new float[Batch * 5 * ModelDim]), tail);

        var rebuilt = new SessionInputs(storage, "s2", Batch, ModelDim, SegmentTokens);
        AssertHistory(await rebuilt.ReadAsync(0, 5, tail), 0, 5);
        tail = await rebuilt.WriteAsync(5, 1, Input(5, 1), tail);
        Assert.Equal([4, 5], tail);
        tail = await rebuilt.WriteAsync(6, 3, Input(6, 3), tail);
        Assert.Empty(tail);
        tail = await rebuilt.WriteAsync(9, 1, Input(9, 1), tail);
        Assert.Equal([9], tail);
        AssertHistory(await new SessionInputs(storage, "s2", Batch, ModelDim, SegmentTokens).ReadAsync(0, 10, tail), 0, 10);
    }
}
