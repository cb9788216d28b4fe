using Headwise.Contracts;

namespace Headwise.Grains.Decode;

/// <summary>
/// The inputs a decode session has seen, per sequence, so a head that lost its K/V cache (its silo died, the cache was
/// evicted) can be re-filled: every kept row from the first kept position. Sliding-window models keep only the last
/// window − 1 rows, since no later query sees further back.
/// </summary>
public static class SessionHistory
{
    /// <summary>Appends the step's rows to each sequence's history (rows past Position until the step succeeds).</summary>
    public static void Remember(DecodeSessionState session, DecodeCommand command, SessionBudget budget, string sessionId)
    {
        int modelDim = session.Spec.ModelDim;
        if (session.Batch == 0)
        {
            // A first step that failed left its reservation behind; this one starts the history again.
            budget.Release(session.ReservedBytes);
            session.ReservedBytes = 0;
            session.Batch = command.Batch;
            session.History = Enumerable.Range(0, command.Batch).Select(_ => Array.Empty<float>()).ToList();
        }
        int kept = session.Position - session.HistoryStart;
        int needed = (kept + command.Tokens) * modelDim;
        int length = session.History[0].Length;
        if (needed > length)
        {
            // Twice what is needed now, up to what the session can still keep: room sized by the old length left a
            // prefill's history exactly full, so the first step after it copied every row again into fresh pages.
            // Rows past Position are never read.
            int capacity = Capacity(needed, Math.Max(16L * modelDim, 2L * needed), Keepable(session) * modelDim);
            long grow = (long)(capacity - length) * sizeof(float) * session.Batch;
            // The room is a saving, not a need. Under a cap it cannot pass, the history grows as it did before the room
            // existed (doubling its old length, so steps near the cap do not each copy every row), or is refused.
            if (!budget.TryReserve(grow))
            {
                capacity = Capacity(needed, Math.Max(16L * modelDim, 2L * length), long.MaxValue);
                grow = (long)(capacity - length) * sizeof(float) * session.Batch;
                budget.Reserve(sessionId, grow);
            }
            session.ReservedBytes += grow;
            for (int s = 0; s < session.Batch; s++)
            {
                var history = GC.AllocateUninitializedArray<float>(capacity);
                session.History[s].AsSpan(0, kept * modelDim).CopyTo(history);
                session.History[s] = history;
            }
        }
        var x = FloatBytes.AsFloats(command.Input);
        for (int s = 0; s < session.Batch; s++)
            x.Slice(s * command.Tokens * modelDim, command.Tokens * modelDim).CopyTo(session.History[s].AsSpan(kept * modelDim));
    }

    // At least `needed`, else `room` up to `bound`, never past the largest array.
    private static int Capacity(int needed, long room, long bound) =>
        (int)Math.Max(needed, Math.Min(Math.Min(room, bound), Array.MaxLength));

    // Rows the session can still hold at once: up to max_tokens, and under a window what Forget keeps before it compacts.
    private static long Keepable(DecodeSessionState session)
    {
        long keepable = session.MaxTokens - session.HistoryStart;
        int window = session.Spec.Window;
        return window > 0 ? Math.Min(keepable, window - 1 + Math.Max(window, 16)) : keepable;
    }

    /// <summary>Sliding window: inputs more than window − 1 tokens back can no longer be seen by any later query.</summary>
    public static void Forget(DecodeSessionState session)
    {
        int window = session.Spec.Window;
        if (window <= 0) return;
        int modelDim = session.Spec.ModelDim;
        int kept = session.Position - session.HistoryStart;
        int keep = window - 1;
        int drop = kept - keep;
        if (drop < Math.Max(window, 16)) return;
        foreach (var history in session.History)
            history.AsSpan(drop * modelDim, keep * modelDim).CopyTo(history);
        session.HistoryStart += drop;
    }

    /// <summary>Re-fill: every kept input of the session, this step's included, from the first kept position.</summary>
    public static HeadDecodeWork RefillWork(DecodeSessionState session, DecodeCommand command, HeadDecodeWork work)
    {
        int modelDim = session.Spec.ModelDim;
        int rows = session.Position - session.HistoryStart + command.Tokens;
        var all = new float[command.Batch * rows * modelDim];
        for (int s = 0; s < command.Batch; s++)
            session.History[s].AsSpan(0, rows * modelDim).CopyTo(all.AsSpan(s * rows * modelDim));
        return work with
        {
            Tokens = rows,
            Position = session.HistoryStart,
            Input = FloatBytes.ToBytes(all),
            Restart = true,
        };
    }

    /// <summary>A re-fill answers for every kept row; the step wants only the new ones: [B, new tokens, g·dh].</summary>
    public static float[] NewRows(DecodeSessionState session, DecodeCommand command, byte[] refillOutput)
    {
        var full = FloatBytes.AsFloats(refillOutput);
        int rows = session.Position - session.HistoryStart + command.Tokens;
        int width = session.Spec.GroupSize * session.Spec.HeadDim;
        var tail = new float[command.Batch * command.Tokens * width];
        for (int s = 0; s < command.Batch; s++)
            full.Slice((s * rows + rows - command.Tokens) * width, command.Tokens * width).CopyTo(tail.AsSpan(s * command.Tokens * width));
        return tail;
    }
}
