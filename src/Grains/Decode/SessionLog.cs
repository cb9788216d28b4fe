using System.Security.Cryptography;
using Headwise.Contracts;
using Orleans.Storage;

namespace Headwise.Grains.Decode;

/// <summary>
/// What a decode session keeps in grain storage, for one activation of its coordinator: the <see cref="SessionRecord"/>
/// and the inputs seen (<see cref="SessionInputs"/>). A step's rows are stored while its heads compute
/// (<see cref="Begin"/>); the record moves to the step's position only once both are done (<see cref="Commit"/>), so
/// whatever a caller was answered survives the coordinator's silo, and a step that failed leaves nothing behind
/// (<see cref="Abandon"/>). A retried step is answered from the record, never applied twice (<see cref="Replay"/>).
/// </summary>
internal sealed class SessionLog(IPersistentState<SessionRecord> record, IGrainStorage storage, string sessionId, long inputSegmentBytes)
{
    private SessionInputs? _inputs;
    // A Commit's record write threw and no read since has shown storage to hold the record this activation has: the
    // write may have landed (a storage timeout), and then storage's record lists the step's inputs and position.
    private bool _recordUncertain;

    private int SegmentsEnd => Math.Max(record.State.InputSegmentsEnd, _inputs?.SegmentsEnd ?? 0);

    public bool Exists => record.RecordExists;

    public SessionRecord Stored => record.State;

    /// <summary>
    /// A step's record write threw, and reading the record back either failed or found that the write landed after all
    /// (a storage timeout): this activation's position and the record's ETag are no longer storage's. Only an activation
    /// that reads the record afresh serves the session right.
    /// </summary>
    public bool RecordUncertain => _recordUncertain;

    public Task Open(SessionRecord opened)
    {
        record.State = opened;
        return record.WriteStateAsync();
    }

    /// <summary>Starts storing the step's rows [Position, Position + tokens); the step counts only once <see cref="Commit"/> is done.</summary>
    public PendingStep Begin(DecodeSessionState session, DecodeCommand command)
    {
        var stored = record.State;
        int segmentTokens = stored.SegmentTokens > 0
            ? stored.SegmentTokens
            : SessionInputs.TokensPerSegment(command.Batch, session.Spec.ModelDim, inputSegmentBytes);
        _inputs ??= new SessionInputs(storage, sessionId, command.Batch, session.Spec.ModelDim, segmentTokens);
        return new PendingStep(stored, segmentTokens, _inputs.WriteAsync(session.Position, command.Tokens, command.Input, stored.InputTail));
    }

    /// <summary>Writes the record at the step's end position, after its rows are stored; on failure the record is as it was.</summary>
    public async Task Commit(PendingStep step, DecodeSessionState session, DecodeCommand command, byte[] output)
    {
        var stored = step.Stored;
        var tail = await step.InputsStored;
        record.State = stored with
        {
            InputTail = tail,
            InputTailSlots = Math.Max(stored.InputTailSlots, tail.Length),
            InputSegmentsEnd = SegmentsEnd,
            Batch = command.Batch,
            ModelDim = session.Spec.ModelDim,
            SegmentTokens = step.SegmentTokens,
            Position = session.Position + command.Tokens,
            LastUseUtc = DateTime.UtcNow,
            LastStep = new SessionStepRecord
            {
                Before = session.Position,
                Tokens = command.Tokens,
                InputDigest = Digest(command),
                // Only a step that named its position can be retried; only its answer is worth keeping.
                Output = command.ExpectedPosition is null ? null : output,
                ModelDim = session.Spec.ModelDim,
            },
        };
        try
        {
            await record.WriteStateAsync();
        }
        catch
        {
            record.State = stored;
            _recordUncertain = true;
            throw;
        }
    }

    /// <summary>
    /// The step failed: its rows past Position are ignored, in memory and in storage. The input write must be over before
    /// the next step writes the same segment. When its record write threw, the record is read back first: if the write
    /// landed (or the read fails too) the step's rows stay, for the record may list them, and <see cref="RecordUncertain"/>
    /// tells the caller to leave the session to a fresh activation.
    /// </summary>
    public async Task Abandon(PendingStep step, DecodeSessionState session)
    {
        try { await step.InputsStored; }
        catch (Exception) { } // the step's own failure is the one the caller gets
        if (_recordUncertain) await ReadBack(session);
        if (_recordUncertain) return;
        if (session.Position == 0)
        {
            session.Batch = 0;
            // The next first step may bring another batch, hence other segments, and the record (no step counted yet)
            // knows of none of these: they go now, not at Close.
            if (_inputs is { } dropped)
            {
                try { await dropped.ClearAsync(0, slotsUsed: 0, rewrittenToo: false); }
                catch (Exception) { } // storage failing again: keys past what later steps overwrite stay behind
            }
            _inputs = null;
        }
    }

    // Whether a record write that threw landed: storage's record, with its ETag. Not landed, storage holds the record the
    // step started from, and this activation goes on (its stored inputs past the position stay known for a Close).
    private async Task ReadBack(DecodeSessionState session)
    {
        try
        {
            await record.ReadStateAsync();
        }
        catch (Exception)
        {
            return; // storage failing again: still unknown
        }
        _recordUncertain = record.RecordExists && record.State.Position != session.Position;
    }

    /// <summary>A retried step: answered from the record when it is the last one applied, never applied again.</summary>
    public DecodeResult Replay(DecodeCommand command, int expected)
    {
        var stored = record.State;
        int position = stored.Position;
        if (stored.LastStep is { } last && last.Before == expected && last.Tokens == command.Tokens
            && last.InputDigest.AsSpan().SequenceEqual(Digest(command)))
        {
            if (last.Output is { } output)
                return new DecodeResult { Output = output, ModelDim = last.ModelDim, Position = position, Replayed = true };
            throw new HeadwiseException(ErrorCode.FailedPrecondition,
                $"session '{sessionId}' already applied this step at position {expected} (it is at position {position} now); " +
                "its answer was not kept because the step came without an expected position.");
        }
        throw new HeadwiseException(ErrorCode.FailedPrecondition,
            $"session '{sessionId}' is at position {position}, not at the expected position {expected}; nothing was applied. " +
            (expected < position
                ? "Only a retry of the last step (same expected position, same input) is answered again."
                : "Positions count the tokens the session has seen; send the steps in order."));
    }

    /// <summary>Per sequence, the stored inputs of tokens [from, Position): a rebuilt coordinator's history.</summary>
    public async Task<List<float[]>> ReadInputs(int from)
    {
        var stored = record.State;
        var inputs = new SessionInputs(storage, sessionId, stored.Batch, stored.ModelDim, stored.SegmentTokens);
        var history = await inputs.ReadAsync(from, stored.Position, stored.InputTail);
        _inputs = inputs;
        return history;
    }

    /// <summary>Deletes the stored inputs, then the record: a failure leaves the session whole for a retried Close.</summary>
    public async Task Clear()
    {
        var stored = record.State;
        if (stored.SegmentTokens > 0)
        {
            var inputs = _inputs ?? new SessionInputs(storage, sessionId, stored.Batch, stored.ModelDim, stored.SegmentTokens);
            await inputs.ClearAsync(stored.Position, stored.InputTailSlots, SegmentsEnd, rewrittenToo: true);
        }
        await record.ClearStateAsync();
        _inputs = null;
    }

    // What makes a retry the same step: its batch, tokens and X.
    private static byte[] Digest(DecodeCommand command)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(BitConverter.GetBytes(command.Batch));
        sha.AppendData(BitConverter.GetBytes(command.Tokens));
        sha.AppendData(command.Input);
        return sha.GetHashAndReset();
    }
}

/// <summary>A step under way: the record it started from and its rows' write (the open segment's tail once stored).</summary>
internal sealed record PendingStep(SessionRecord Stored, int SegmentTokens, Task<int[]> InputsStored);
