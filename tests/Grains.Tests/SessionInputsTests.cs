using Headwise.Grains.Decode;
using Orleans.Storage;

namespace Headwise.Grains.Tests;

/// <summary>
/// A session's inputs in storage segments: what is read back is what was written, a one-token step writes one segment
/// whatever the session's length (no O(n²) bytes over a session), and clearing leaves no key behind.
/// </summary>
public sealed class SessionInputsTests
{
    /// <summary>Grain storage in a dictionary that counts the bytes each write carries and checks ETags like Redis.</summary>
    private sealed class CountingStorage : IGrainStorage
    {
        public Dictionary<GrainId, (byte[] Rows, string ETag)> Keys { get; } = [];
        public long BytesWritten { get; private set; }

        public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            if (Keys.TryGetValue(grainId, out var held))
            {
                grainState.State = (T)(object)new SessionInputSegment { Rows = held.Rows.ToArray() };
                grainState.ETag = held.ETag;
                grainState.RecordExists = true;
            }
            return Task.CompletedTask;
        }

        public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            string? current = Keys.TryGetValue(grainId, out var held) ? held.ETag : null;
            if (current != grainState.ETag) throw new InconsistentStateException($"etag {grainState.ETag}, stored {current}");
            var rows = ((SessionInputSegment)(object)grainState.State!).Rows.ToArray();
            BytesWritten += rows.Length;
            grainState.ETag = Guid.NewGuid().ToString("N");
            grainState.RecordExists = true;
            Keys[grainId] = (rows, grainState.ETag);
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
    private const int SegmentBytes = Batch * SegmentTokens * ModelDim * sizeof(float);

    // X [B, tokens, D] of tokens [start, start + tokens): row (s, p) holds s·1000 + p + column/100.
    private static float[] Rows(int start, int tokens) =>
        Enumerable.Range(0, Batch * tokens * ModelDim)
            .Select(i => (i / (tokens * ModelDim)) * 1000f + start + (i / ModelDim % tokens) + (i % ModelDim) / 100f).ToArray();

    [Fact]
    public async Task One_token_steps_write_one_segment_each_and_read_back_exactly()
    {
        var storage = new CountingStorage();
        Assert.Equal(SegmentTokens, SessionInputs.TokensPerSegment(Batch, ModelDim, SegmentBytes));
        var inputs = new SessionInputs(storage, "s1", Batch, ModelDim, SegmentTokens);
        const int tokens = 22;
        for (int p = 0; p < tokens; p++)
        {
            long before = storage.BytesWritten;
            await inputs.WriteAsync(p, 1, Contracts.FloatBytes.ToBytes(Rows(p, 1)));
            Assert.Equal(SegmentBytes, storage.BytesWritten - before);
        }
        // A seven-token step from 22 touches the segments of 20–23, 24–27 and 28: three.
        long beforeLong = storage.BytesWritten;
        await inputs.WriteAsync(tokens, 7, Contracts.FloatBytes.ToBytes(Rows(tokens, 7)));
        Assert.Equal(3 * SegmentBytes, storage.BytesWritten - beforeLong);

        // Another coordinator (a rebuild on another silo) reads what was written, from any start.
        var rebuilt = new SessionInputs(storage, "s1", Batch, ModelDim, SegmentTokens);
        foreach (int from in new[] { 0, 6, 27 })
        {
            var history = await rebuilt.ReadAsync(from, tokens + 7);
            var expected = Rows(from, tokens + 7 - from);
            for (int s = 0; s < Batch; s++)
                Assert.Equal(expected.AsSpan(s * (tokens + 7 - from) * ModelDim, (tokens + 7 - from) * ModelDim).ToArray(), history[s]);
        }
        // It goes on writing the last segment it read (its ETag known), then clears every key.
        await rebuilt.WriteAsync(tokens + 7, 1, Contracts.FloatBytes.ToBytes(Rows(tokens + 7, 1)));
        Assert.Equal(Rows(0, tokens + 8).AsSpan(0, (tokens + 8) * ModelDim).ToArray(), (await rebuilt.ReadAsync(0, tokens + 8))[0]);
        await rebuilt.ClearAsync(tokens + 8);
        Assert.Empty(storage.Keys);
    }

    [Fact]
    public async Task A_segment_written_by_a_step_that_was_never_acknowledged_is_overwritten()
    {
        var storage = new CountingStorage();
        var lost = new SessionInputs(storage, "s2", Batch, ModelDim, SegmentTokens);
        await lost.WriteAsync(0, 4, Contracts.FloatBytes.ToBytes(Rows(0, 4)));
        // Its coordinator stored tokens 4–5 and died before the step counted: the session is at position 4.
        await lost.WriteAsync(4, 2, Contracts.FloatBytes.ToBytes(new float[Batch * 2 * ModelDim]));

        var rebuilt = new SessionInputs(storage, "s2", Batch, ModelDim, SegmentTokens);
        Assert.Equal(Rows(0, 4).AsSpan(0, 4 * ModelDim).ToArray(), (await rebuilt.ReadAsync(0, 4))[0]);
        await rebuilt.WriteAsync(4, 3, Contracts.FloatBytes.ToBytes(Rows(4, 3)));
        var history = await rebuilt.ReadAsync(0, 7);
        Assert.Equal(Rows(0, 7).AsSpan(7 * ModelDim, 7 * ModelDim).ToArray(), history[1]);
    }
}
