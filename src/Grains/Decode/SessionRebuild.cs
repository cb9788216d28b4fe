using Headwise.Contracts;

namespace Headwise.Grains.Decode;

/// <summary>
/// The coordinator of a session opened elsewhere (its silo died, or its activation was collected): the layer's W_O from
/// the layer grain, the kept inputs from storage. The heads keep their caches where they survived.
/// </summary>
internal static class SessionRebuild
{
    public static async Task<DecodeSessionState> Run(SessionLog log, IGrainFactory grains, SessionProjections projections,
        SessionBudget budget, string sessionId)
    {
        var stored = log.Stored;
        var (projection, shared) = await projections.Fetch(grains, stored.Model, stored.Layer);
        if (!projection.HeadVersions.AsSpan().SequenceEqual(stored.HeadVersions))
            throw new HeadwiseException(ErrorCode.FailedPrecondition,
                $"the weights of model '{stored.Model}' layer {stored.Layer} were uploaded again after session '{sessionId}' opened: " +
                "its inputs belong to the old weights. Close it and open a new session.");
        var session = new DecodeSessionState
        {
            Model = stored.Model,
            Layer = stored.Layer,
            MaxTokens = stored.MaxTokens,
            Spec = projection.Spec,
            Projection = shared,
            Batch = stored.Batch,
            Position = stored.Position,
        };
        if (stored.Batch == 0) return session;
        // Sliding window: no later query sees further back than window − 1 tokens; the first segment is read whole.
        int window = projection.Spec.Window;
        int from = window > 0 ? Math.Max(0, stored.Position - (window - 1)) : 0;
        from = from / stored.SegmentTokens * stored.SegmentTokens;
        long bytes = (long)(stored.Position - from) * stored.ModelDim * sizeof(float) * stored.Batch;
        budget.Reserve(sessionId, bytes);
        try
        {
            session.History = await log.ReadInputs(from);
        }
        catch
        {
            budget.Release(bytes);
            throw;
        }
        session.HistoryStart = from;
        session.ReservedBytes = bytes;
        return session;
    }
}
