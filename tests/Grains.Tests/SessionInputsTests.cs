using Headwise.Grains.Decode;
using Orleans.Storage;

namespace Headwise.Grains.Tests;

/// <summary>
/// A session's inputs in storage segments: what is read back is what was written, a one-token step writes one segment
/// whatever the session's length (no O(n²) bytes over a session), and clearing leaves no key behind.
/// </summary>
public sealed class SessionInputsTests
{
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
        var storage = new CountingSessionStorage();
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
        var storage = new CountingSessionStorage();
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
        // Segments 0–4 lie behind the session's position: the coordinator kept their ETags, not their 128-byte rows.
        Assert.Equal(5, storage.RowsHeldAtClear.Count);
        Assert.All(storage.RowsHeldAtClear, bytes => Assert.Equal(0, bytes));
    }

    [Fact]
    public async Task A_close_deletes_the_segments_a_failed_long_step_wrote_past_the_position()
    {
        var storage = new CountingSessionStorage();
        var inputs = new SessionInputs(storage, "s5", Batch, ModelDim, SegmentTokens);
        int[] tail = await inputs.WriteAsync(0, 5, Input(0, 5), []);
        Assert.Equal([4], tail);
        // A 14-token step from 5 stores segments 1, 2 and 3 whole and 18 as a piece of segment 4, then fails: the
        // session stays at 5, and a close that cleared only up to the segment after the position left segment 3 behind.
        await inputs.WriteAsync(5, 14, Input(5, 14), tail);
        Assert.Equal(5, inputs.SegmentsEnd);
        await inputs.ClearAsync(5, slotsUsed: tail.Length);
        Assert.Empty(storage.Keys);

        // The same, closed by a coordinator on another silo: it knows how far steps wrote from the session's record.
        inputs = new SessionInputs(storage, "s6", Batch, ModelDim, SegmentTokens);
        tail = await inputs.WriteAsync(0, 5, Input(0, 5), []);
        await inputs.WriteAsync(5, 14, Input(5, 14), tail);
        var rebuilt = new SessionInputs(storage, "s6", Batch, ModelDim, SegmentTokens);
        AssertHistory(await rebuilt.ReadAsync(0, 5, tail), 0, 5);
        await rebuilt.ClearAsync(5, slotsUsed: tail.Length, segmentsEnd: inputs.SegmentsEnd);
        Assert.Empty(storage.Keys);
    }

    [Fact]
    public async Task A_close_deletes_a_segment_another_coordinator_rewrote_after_this_one_learnt_its_ETag()
    {
        var storage = new CountingSessionStorage();
        var stale = new SessionInputs(storage, "s7", Batch, ModelDim, SegmentTokens);
        int[] tail = await stale.WriteAsync(0, 10, Input(0, 10), []);
        // A rebuild elsewhere (this coordinator cut off meanwhile) rewrites segment 1 whole with the same rows.
        var other = new SessionInputs(storage, "s7", Batch, ModelDim, SegmentTokens);
        AssertHistory(await other.ReadAsync(0, 4, []), 0, 4);
        await other.WriteAsync(4, 4, Input(4, 4), []);
        await stale.ClearAsync(10, slotsUsed: tail.Length);
        Assert.Empty(storage.Keys);
    }

    [Fact]
    public async Task A_failed_step_of_a_stale_coordinator_leaves_the_keys_another_one_rewrote()
    {
        var storage = new CountingSessionStorage();
        var stale = new SessionInputs(storage, "s8", Batch, ModelDim, SegmentTokens);
        await stale.WriteAsync(0, 10, Input(0, 10), []);
        var other = new SessionInputs(storage, "s8", Batch, ModelDim, SegmentTokens);
        AssertHistory(await other.ReadAsync(0, 4, []), 0, 4);
        await other.WriteAsync(4, 4, Input(4, 4), []);
        // The stale coordinator's step failed: it drops what it wrote, but segment 1 is the other coordinator's now.
        await stale.ClearAsync(10, slotsUsed: 0, rewrittenToo: false);
        Assert.Single(storage.Keys);
        AssertHistory(await new SessionInputs(storage, "s8", Batch, ModelDim, SegmentTokens).ReadAsync(4, 8, []), 4, 8);
    }

    [Fact]
    public async Task A_rebuild_that_reads_only_its_window_goes_on_exactly_and_its_close_leaves_no_key()
    {
        var storage = new CountingSessionStorage();
        var lost = new SessionInputs(storage, "s8", Batch, ModelDim, SegmentTokens);
        int[] tail = [];
        for (int p = 0; p < 18; p++) tail = await lost.WriteAsync(p, 1, Input(p, 1), tail);
        Assert.Equal([16, 17], tail);

        // A sliding-window session needs only tokens from 9 on: segments 0 and 1 are never read.
        var rebuilt = new SessionInputs(storage, "s8", Batch, ModelDim, SegmentTokens);
        int read = storage.SegmentsRead;
        AssertHistory(await rebuilt.ReadAsync(9, 18, tail), 9, 18);
        Assert.Equal(2, storage.SegmentsRead - read); // segments 2 and 3 (segment 4 is only the tail's pieces yet)
        // 18–19 complete segment 4 over the pieces it read; 20 starts segment 5 whole, as the record still lists pieces.
        tail = await rebuilt.WriteAsync(18, 3, Input(18, 3), tail);
        Assert.Empty(tail);
        AssertHistory(await new SessionInputs(storage, "s8", Batch, ModelDim, SegmentTokens).ReadAsync(0, 21, tail), 0, 21);
        await rebuilt.ClearAsync(21, slotsUsed: 2);
        Assert.Empty(storage.Keys);
    }

    [Fact]
    public async Task A_segment_whose_tail_slots_are_full_is_written_whole_and_its_tail_starts_again()
    {
        const int longSegment = 2 * SessionInputs.TailSlots + 8;
        var storage = new CountingSessionStorage();
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
        var storage = new CountingSessionStorage();
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
