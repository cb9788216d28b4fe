using Headwise.Contracts;
using Headwise.Grains.Decode;

namespace Headwise.Grains.Tests;

/// <summary>
/// A session's log leaves nothing in storage once it is closed, whatever steps failed on the way: a failed first step
/// (the record knows of no segment yet), a failed long step past the position, closed by the same coordinator or by one
/// rebuilt on another silo from the record alone.
/// </summary>
public sealed class SessionLogTests
{
    /// <summary>The session's record, kept in memory like Orleans' persistent state (its copy survives a "rebuild").</summary>
    private sealed class RecordState : IPersistentState<SessionRecord>
    {
        public SessionRecord State { get; set; } = new();
        public string? Etag { get; private set; }
        public bool RecordExists { get; private set; }
        public int Writes { get; private set; }

        public Task ClearStateAsync()
        {
            State = new SessionRecord();
            RecordExists = false;
            return Task.CompletedTask;
        }

        /// <summary>Writes throw, after landing or not: a storage timeout leaves the caller unsure which.</summary>
        public (bool Fail, bool Lands) Faulty { get; set; }

        /// <summary>The record as the last write that landed stored it.</summary>
        public SessionRecord Landed { get; private set; } = new();

        public Task WriteStateAsync()
        {
            if (Faulty is { Fail: true, Lands: false }) throw new TimeoutException("record write timed out");
            Writes++;
            RecordExists = true;
            Etag = Writes.ToString();
            Landed = State;
            if (Faulty.Fail) throw new TimeoutException("record write timed out");
            return Task.CompletedTask;
        }

        /// <summary>Reads throw too: storage still failing.</summary>
        public bool ReadFails { get; set; }

        /// <summary>The record as the last write that landed left it (what a read gets).</summary>
        public Task ReadStateAsync()
        {
            if (ReadFails) throw new TimeoutException("record read timed out");
            State = Landed;
            return Task.CompletedTask;
        }
    }

    private const int ModelDim = 8;
    // 4 tokens of one sequence per segment.
    private const long SegmentBytes = 4 * ModelDim * sizeof(float);

    private static readonly AttentionSpec Spec = new() { ModelDim = ModelDim, HeadCount = 2, HeadDim = 4 };

    private static DecodeSessionState Session() => new()
    {
        Model = "m", Layer = 0, MaxTokens = 64, Spec = Spec,
        Projection = new SharedProjection([], [], []),
    };

    private static DecodeCommand Step(int tokens) => new()
    {
        Batch = 1, Tokens = tokens, ModelDim = ModelDim,
        Input = FloatBytes.ToBytes(Enumerable.Range(0, tokens * ModelDim).Select(i => i / 7f).ToArray()),
    };

    private static async Task Commit(SessionLog log, DecodeSessionState session, int tokens)
    {
        var command = Step(tokens);
        session.Batch = 1;
        var step = log.Begin(session, command);
        await log.Commit(step, session, command, new byte[tokens * ModelDim * sizeof(float)]);
        session.Position += tokens;
    }

    private static async Task Fail(SessionLog log, DecodeSessionState session, int tokens)
    {
        session.Batch = 1;
        await log.Abandon(log.Begin(session, Step(tokens)), session);
    }

    // A step whose heads answered but whose record write threw (record.Faulty), abandoned as the grain does.
    private static async Task<DecodeCommand> FailRecordWrite(SessionLog log, DecodeSessionState session, int tokens)
    {
        session.Batch = 1;
        var command = Step(tokens);
        var step = log.Begin(session, command);
        await Assert.ThrowsAsync<TimeoutException>(() => log.Commit(step, session, command, new byte[tokens * ModelDim * sizeof(float)]));
        await log.Abandon(step, session);
        return command;
    }

    [Fact]
    public async Task A_failed_first_step_leaves_no_input_behind()
    {
        var storage = new CountingSessionStorage();
        var record = new RecordState();
        var log = new SessionLog(record, storage, "s", SegmentBytes);
        await log.Open(new SessionRecord { Model = "m", MaxTokens = 64 });
        await Fail(log, Session(), 10);
        Assert.Empty(storage.Keys);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public async Task A_first_step_whose_record_write_failed_keeps_its_inputs_only_when_the_record_may_list_them(bool landed, bool readFails)
    {
        var storage = new CountingSessionStorage();
        var record = new RecordState();
        var log = new SessionLog(record, storage, "s", SegmentBytes);
        var session = Session();
        await log.Open(new SessionRecord { Model = "m", MaxTokens = 64 });
        record.Faulty = (true, landed);
        record.ReadFails = readFails;
        var command = await FailRecordWrite(log, session, 10);
        // Known not to have landed (read back): the rows go at once, as for any failed first step, and this log goes on.
        Assert.Equal(landed || readFails, log.RecordUncertain);
        Assert.Equal(landed || readFails, storage.Keys.Count > 0);
        if (landed)
        {
            // A rebuild from the record that landed reads every input the step stored.
            Assert.Equal(10, record.Landed.Position);
            var history = await new SessionLog(new RecordState { State = record.Landed }, storage, "s", SegmentBytes).ReadInputs(0);
            Assert.Equal(command.Input, FloatBytes.ToBytes(history[0]));
        }
    }

    [Fact]
    public async Task A_long_step_whose_record_write_failed_without_landing_is_cleared_by_a_later_close()
    {
        var storage = new CountingSessionStorage();
        var record = new RecordState();
        var log = new SessionLog(record, storage, "s", SegmentBytes);
        var session = Session();
        await log.Open(new SessionRecord { Model = "m", MaxTokens = 64 });
        await Commit(log, session, 5);
        // Tokens 5–19 reach segment 4; the record's write fails without landing, so only this log knows of segment 4.
        record.Faulty = (true, false);
        await FailRecordWrite(log, session, 15);
        Assert.False(log.RecordUncertain);
        Assert.Contains(storage.Keys.Keys, key => key.ToString().EndsWith("s/4", StringComparison.Ordinal));
        record.Faulty = (false, false);
        await Commit(log, session, 1);
        await log.Clear();
        Assert.Empty(storage.Keys);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_close_after_a_failed_long_step_leaves_no_input_behind(bool closedElsewhere)
    {
        var storage = new CountingSessionStorage();
        var record = new RecordState();
        var log = new SessionLog(record, storage, "s", SegmentBytes);
        var session = Session();
        await log.Open(new SessionRecord { Model = "m", MaxTokens = 64 });
        await Commit(log, session, 5);
        // Tokens 5–19 reach segment 4; the session stays at 5, so the segment after its position is segment 2.
        await Fail(log, session, 15);
        Assert.Contains(storage.Keys.Keys, key => key.ToString().EndsWith("s/4", StringComparison.Ordinal));
        await Commit(log, session, 1);
        Assert.Equal(5, record.State.InputSegmentsEnd);
        if (closedElsewhere)
        {
            log = new SessionLog(record, storage, "s", SegmentBytes);
            await log.ReadInputs(0);
        }
        await log.Clear();
        Assert.Empty(storage.Keys);
        Assert.False(record.RecordExists);
    }
}
