using System.Buffers;
using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Kernels;
using Microsoft.Extensions.Options;
using Orleans.Placement;

namespace Headwise.Grains;

/// <summary>
/// The coordinator of one decode session (key: the session id), called by the gRPC gateway and by Orleans clients.
/// What the session needs is in memory only, in this silo's <see cref="SessionRegistry"/> (so a re-activation here
/// finds it): the layer's spec, W_O and b_O, and the inputs of every token the session has seen (the last window of
/// them for sliding-window models). Each step sends only the new tokens' X to
/// the layer's head grains, which keep K and V (<see cref="SessionCaches"/>): the heads active on this silo are computed
/// in-process, the heads of each other silo through one message to its relay. A head that lost its cache (its silo
/// died, or the cache was evicted) answers without output and gets the session's inputs again, so the step still
/// gives the right answer. Placed on the silo that opens it, so the gateway's call stays local.
/// A session that is closed, idle past <see cref="DecodeSessionOptions.IdleSeconds"/>, or whose coordinator's silo died
/// is gone: its calls fail with NotFound naming it.
/// </summary>
[PreferLocalPlacement]
public sealed class DecodeSessionGrain(
    IHeadKernel kernel,
    SessionBudget budget,
    IOptions<DecodeSessionOptions> options,
    IOptions<ForwardLimits> limits,
    SessionRegistry registry,
    SessionCaches caches,
    SessionProjections projections,
    LocalHeads localHeads,
    SiloIdentity silo) : Grain, IDecodeSessionGrain
{
    private IGrainTimer? _timer;

    private string Id => this.GetPrimaryKeyString();

    public async Task<SessionInfo> Open(string model, int layer, int maxTokens)
    {
        if (registry.Find(Id) is not null)
            throw new HeadwiseException(ErrorCode.AlreadyExists, $"session '{Id}' is already open.");
        ModelName.Validate(model, "model");
        foreach (var (_, expired) in registry.RemoveIdle(TimeSpan.FromSeconds(options.Value.IdleSeconds)))
        {
            budget.Release(expired.ReservedBytes); // their head caches expire on their own
            HeadwiseTelemetry.OpenSessions.Add(-1, Tags(expired));
        }
        var limit = options.Value;
        if (maxTokens < 0 || maxTokens > limit.MaxTokens)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"max_tokens must be 0 (default {limit.DefaultMaxTokens}) or in 1..{limit.MaxTokens} (Headwise__Sessions__MaxTokens), got {maxTokens}.");
        var projection = await GrainFactory.GetGrain<ILayerGrain>(GrainKeys.Layer(model, layer)).GetProjection();
        var session = new DecodeSessionState
        {
            Model = model,
            Layer = layer,
            MaxTokens = maxTokens == 0 ? limit.DefaultMaxTokens : maxTokens,
            Spec = projection.Spec,
            Projection = projections.Get(model, layer, projection),
        };
        registry.Add(Id, session);
        HeadwiseTelemetry.OpenSessions.Add(1, Tags(session));
        EnsureTimer();
        DelayDeactivation(TimeSpan.FromSeconds(limit.IdleSeconds + 60));
        return new SessionInfo { Session = Id, MaxTokens = session.MaxTokens };
    }

    public async Task<DecodeResult> Decode(DecodeCommand command)
    {
        var session = Require();
        session.LastUse = Stopwatch.GetTimestamp();
        // Orleans' own idle collection must not end the session before IdleSeconds do.
        DelayDeactivation(TimeSpan.FromSeconds(options.Value.IdleSeconds + 60));
        var spec = session.Spec;
        Validate(session, command);

        using var activity = HeadwiseTelemetry.Source.StartActivity("headwise.decode");
        activity?.SetTag("headwise.session", Id);
        activity?.SetTag("headwise.model", session.Model);
        activity?.SetTag("headwise.layer", session.Layer);
        activity?.SetTag("headwise.batch", command.Batch);
        activity?.SetTag("headwise.tokens", command.Tokens);
        activity?.SetTag("headwise.position", session.Position);

        long started = Stopwatch.GetTimestamp();
        // Inputs are kept before the heads are called, so a head that must be re-filled gets this step's rows too.
        Remember(session, command);
        try
        {
            var (groups, localGroups, remoteMessages) = await StepHeads(session, command, activity);
            var output = Project(session, command, groups.Select(g => g.Z).ToArray());
            session.Position += command.Tokens;
            Forget(session);
            session.LastUse = Stopwatch.GetTimestamp();
            int refilled = groups.Count(g => g.Reprefilled);
            activity?.SetTag("headwise.reprefilled_groups", refilled);
            var tags = Tags(session);
            HeadwiseTelemetry.DecodeMs.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, tags);
            HeadwiseTelemetry.DecodeTokens.Add((long)command.Batch * command.Tokens, tags);
            if (refilled > 0) HeadwiseTelemetry.DecodeRefills.Add(refilled, tags);
            return new DecodeResult
            {
                Output = output,
                ModelDim = spec.ModelDim,
                Position = session.Position,
                ReprefilledGroups = groups.Count(g => g.Reprefilled),
                LocalGroups = localGroups,
                RemoteMessages = remoteMessages,
                TraceId = Activity.Current?.TraceId.ToString() ?? "",
            };
        }
        catch
        {
            // The step did not happen; its rows past Position are ignored. Heads that did append are now ahead of the
            // session and are re-filled on the next step (they answer "no cache at this position").
            if (session.Position == 0) session.Batch = 0;
            activity?.SetStatus(ActivityStatusCode.Error);
            throw;
        }
    }

    public async Task Close()
    {
        var session = Require();
        await End(session);
    }

    private async Task End(DecodeSessionState session)
    {
        if (registry.Remove(Id) is null) return;
        budget.Release(session.ReservedBytes);
        HeadwiseTelemetry.OpenSessions.Add(-1, Tags(session));
        var spec = session.Spec;
        // Best effort: a head on a silo that is gone has nothing to free.
        await Task.WhenAll(Enumerable.Range(0, spec.GroupCount).Select(async g =>
        {
            try { await Head(session, g).DropSession(Id); }
            catch (Exception) { }
        }));
        DeactivateOnIdle();
    }

    private async Task ExpireWhenIdle(CancellationToken cancellationToken)
    {
        if (registry.Find(Id) is { } session && Stopwatch.GetElapsedTime(session.LastUse).TotalSeconds > options.Value.IdleSeconds)
            await End(session);
    }

    private DecodeSessionState Require()
    {
        if (registry.Find(Id) is { } session)
        {
            EnsureTimer();
            return session;
        }
        throw new HeadwiseException(ErrorCode.NotFound,
            $"session '{Id}' not found on silo {silo.Name}: it was closed, expired after {options.Value.IdleSeconds} s idle, " +
            "lost with its coordinator's silo, or never opened; open a new session.");
    }

    // Every activation that serves the session watches its idleness (a re-activation too).
    private void EnsureTimer()
    {
        if (_timer is not null) return;
        var period = TimeSpan.FromSeconds(Math.Clamp(options.Value.IdleSeconds / 4.0, 1, 60));
        _timer = this.RegisterGrainTimer(ExpireWhenIdle, new GrainTimerCreationOptions(period, period) { Interleave = false });
    }

    private void Validate(DecodeSessionState session, DecodeCommand command)
    {
        var spec = session.Spec;
        if (command.ModelDim != spec.ModelDim)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"input.shape[2] is {command.ModelDim}; model '{session.Model}' has model_dim {spec.ModelDim}.");
        if (command.Batch < 1 || command.Batch > limits.Value.MaxBatch)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"input.shape[0] (batch) is {command.Batch}; it must be in 1..{limits.Value.MaxBatch}.");
        if (session.Batch != 0 && command.Batch != session.Batch)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"input.shape[0] (batch) is {command.Batch}; session '{Id}' started with batch {session.Batch}.");
        if (command.Tokens < 1)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"input.shape[1] (new tokens) is {command.Tokens}; it must be at least 1.");
        if ((long)session.Position + command.Tokens > session.MaxTokens)
            throw new HeadwiseException(ErrorCode.ResourceExhausted,
                $"session '{Id}' has seen {session.Position} of its max_tokens {session.MaxTokens}; {command.Tokens} more do not fit. Open a session with a larger max_tokens.");
        if (command.Input.Length != (long)command.Batch * command.Tokens * spec.ModelDim * sizeof(float))
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"input has {command.Input.Length} bytes; shape [{command.Batch}, {command.Tokens}, {spec.ModelDim}] float32 needs {(long)command.Batch * command.Tokens * spec.ModelDim * 4}.");
        var x = FloatBytes.AsFloats(command.Input);
        for (int i = 0; i < x.Length; i++)
            if (!float.IsFinite(x[i]))
                throw new HeadwiseException(ErrorCode.InvalidArgument, $"input has a non-finite value at flat index {i}.");
    }

    // Appends the step's rows to each sequence's history (rows past Position until the step succeeds).
    private void Remember(DecodeSessionState session, DecodeCommand command)
    {
        int modelDim = session.Spec.ModelDim;
        if (session.Batch == 0)
        {
            session.Batch = command.Batch;
            session.History = Enumerable.Range(0, command.Batch).Select(_ => Array.Empty<float>()).ToList();
        }
        int kept = session.Position - session.HistoryStart;
        int needed = (kept + command.Tokens) * modelDim;
        if (needed > session.History[0].Length)
        {
            int capacity = Math.Max(needed, Math.Max(16 * modelDim, session.History[0].Length * 2));
            long grow = (long)(capacity - session.History[0].Length) * sizeof(float) * session.Batch;
            budget.Reserve(Id, grow);
            session.ReservedBytes += grow;
            for (int s = 0; s < session.Batch; s++)
            {
                var history = session.History[s];
                Array.Resize(ref history, capacity);
                session.History[s] = history;
            }
        }
        var x = FloatBytes.AsFloats(command.Input);
        for (int s = 0; s < session.Batch; s++)
            x.Slice(s * command.Tokens * modelDim, command.Tokens * modelDim).CopyTo(session.History[s].AsSpan(kept * modelDim));
    }

    // Sliding window: inputs more than window − 1 tokens back can no longer be seen by any later query.
    private static void Forget(DecodeSessionState session)
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

    // The heads active on this silo are computed here, in parallel over the cores (LocalHeads says why); the heads of
    // each other silo get one message to that silo's relay, which does the same there; a head whose silo is not known
    // yet gets its own message, and its answer says where it lives. Remote messages go first so they run meanwhile.
    private async Task<((float[] Z, bool Reprefilled)[] Groups, int LocalGroups, int RemoteMessages)> StepHeads(DecodeSessionState session, DecodeCommand command, Activity? activity)
    {
        int groupCount = session.Spec.GroupCount;
        if (session.HeadSilos.Length != groupCount) session.HeadSilos = Enumerable.Repeat("", groupCount).ToArray();
        var work = Work(session, command);
        var results = new (float[] Z, bool Reprefilled)[groupCount];
        var local = new List<(string Key, LocalHead Head)>(groupCount);
        var localGroups = new List<int>(groupCount);
        var bySilo = new Dictionary<string, List<int>>();
        var direct = new List<int>();
        for (int group = 0; group < groupCount; group++)
        {
            string key = GrainKeys.Head(session.Model, session.Layer, group);
            string where = session.HeadSilos[group];
            if (localHeads.TryGet(key, out var head))
            {
                local.Add((key, head));
                localGroups.Add(group);
                session.HeadSilos[group] = silo.Name;
            }
            else if (where.Length > 0 && where != silo.Name)
            {
                if (bySilo.TryGetValue(where, out var groups)) groups.Add(group);
                else bySilo[where] = [group];
            }
            else
            {
                direct.Add(group);
            }
        }
        // Before anything is sent or appended: a local head that holds other weights fails the step untouched.
        for (int i = 0; i < local.Count; i++) RequireSameWeights(session, localGroups[i], local[i].Head.Version);

        var calls = direct.Select(CallHead).Concat(bySilo.Select(s => CallRelay(s.Key, s.Value))).ToList();
        activity?.SetTag("headwise.local_groups", local.Count);
        activity?.SetTag("headwise.remote_messages", calls.Count);
        try
        {
            StepLocal();
        }
        catch
        {
            // The step fails with the local error; the remote calls under way still finish first, so none of them
            // runs on into the session's next step.
            try { await Task.WhenAll(calls); } catch (Exception) { }
            throw;
        }
        await Task.WhenAll(calls);
        return (results, local.Count, calls.Count);

        void StepLocal()
        {
            var outcomes = HeadDecoder.DecodeLocal(local, work, kernel, silo.Name, caches);
            for (int i = 0; i < outcomes.Length; i++)
            {
                var outcome = outcomes[i];
                if (outcome.Output is null)
                {
                    var (key, head) = local[i];
                    outcome = HeadDecoder.Decode(key, RefillWork(session, command, work), head.Spec, head.Weights, head.Version, kernel, silo.Name, caches);
                    results[localGroups[i]] = (NewRows(session, command, outcome.Output!), true);
                }
                else
                {
                    results[localGroups[i]] = (FloatBytes.ToFloats(outcome.Output), false);
                }
                RequireSameWeights(session, localGroups[i], outcome.WeightsVersion);
            }
        }

        async Task CallRelay(string where, List<int> groups)
        {
            HeadDecodeOutcome[]? relayed = null;
            try
            {
                relayed = await GrainFactory.GetGrain<ISiloRelayGrain>(GrainKeys.Relay(where))
                    .Decode(work, groups.Select(g => GrainKeys.Head(session.Model, session.Layer, g)).ToArray());
            }
            catch (Exception e) when (IsSiloLoss(e))
            {
                // That silo left: its heads have no cache wherever they are activated next; each re-fills below.
            }
            await Task.WhenAll(groups.Select((group, i) => Finish(group, relayed?[i])));
        }

        async Task CallHead(int group)
        {
            HeadDecodeOutcome? outcome = null;
            try
            {
                outcome = await Head(session, group).Decode(work);
            }
            catch (Exception e) when (IsSiloLoss(e))
            {
                // The head's silo left: its next activation has no cache; re-fill it below.
            }
            await Finish(group, outcome);
        }

        async Task Finish(int group, HeadDecodeOutcome? outcome)
        {
            if (outcome?.Output is { } z)
            {
                RequireSameWeights(session, group, outcome.WeightsVersion);
                results[group] = (FloatBytes.ToFloats(z), false);
                session.HeadSilos[group] = outcome.Silo;
                return;
            }
            var refillWork = RefillWork(session, command, work);
            var head = Head(session, group);
            // The dead silo may still be in the directory for a moment: retry with backoff like a forward pass does.
            var refill = await HeadCallRetry.RunAsync(() => head.Decode(refillWork), () => { });
            RequireSameWeights(session, group, refill.WeightsVersion);
            session.HeadSilos[group] = refill.Silo;
            results[group] = (NewRows(session, command, refill.Output
                ?? throw new HeadwiseException(ErrorCode.Internal, $"head group {group} of session '{Id}' refused a re-fill.")), true);
        }
    }

    // W_O and every cached K and V of the session come from the weights it opened with: a head answering from other
    // weights (an upload since) would mix the two in one answer.
    private void RequireSameWeights(DecodeSessionState session, int group, Guid version)
    {
        var versions = session.Projection.HeadVersions;
        if (group < versions.Length && versions[group] != version)
            throw new HeadwiseException(ErrorCode.FailedPrecondition,
                $"the weights of model '{session.Model}' layer {session.Layer} were uploaded again after session '{Id}' opened " +
                $"(head group {group} changed): its W_O and cached keys and values belong to the old weights. Close it and open a new session.");
    }

    // A retryable silo failure, or a head call that timed out: either way its cache may be gone, so it is re-filled.
    private static bool IsSiloLoss(Exception e) => HeadCallRetry.IsSiloFailure(e) || e is TimeoutException;

    private HeadDecodeWork Work(DecodeSessionState session, DecodeCommand command) => new()
    {
        Session = Id,
        Batch = command.Batch,
        Tokens = command.Tokens,
        Position = session.Position,
        Input = command.Input,
        Restart = session.Position == 0,
    };

    // Re-fill: every kept input of the session, this step's included, from the first kept position.
    private static HeadDecodeWork RefillWork(DecodeSessionState session, DecodeCommand command, HeadDecodeWork work)
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

    // A re-fill answers for every kept row; the step wants only the new ones.
    private static float[] NewRows(DecodeSessionState session, DecodeCommand command, byte[] refillOutput)
    {
        var full = FloatBytes.AsFloats(refillOutput);
        int rows = session.Position - session.HistoryStart + command.Tokens;
        int width = session.Spec.GroupSize * session.Spec.HeadDim;
        var tail = new float[command.Batch * command.Tokens * width];
        for (int s = 0; s < command.Batch; s++)
            full.Slice((s * rows + rows - command.Tokens) * width, command.Tokens * width).CopyTo(tail.AsSpan(s * command.Tokens * width));
        return tail;
    }

    // Y = Concat(Z)·W_O + b_O for the new rows.
    private byte[] Project(DecodeSessionState session, DecodeCommand command, float[][] groupOutputs)
    {
        var spec = session.Spec;
        int rows = command.Batch * command.Tokens;
        int width = spec.GroupSize * spec.HeadDim, concatWidth = spec.HeadCount * spec.HeadDim;
        var concat = ArrayPool<float>.Shared.Rent(rows * concatWidth);
        try
        {
            for (int g = 0; g < groupOutputs.Length; g++)
                for (int row = 0; row < rows; row++)
                    groupOutputs[g].AsSpan(row * width, width).CopyTo(concat.AsSpan(row * concatWidth + g * width));
            var output = new byte[rows * spec.ModelDim * sizeof(float)];
            kernel.Project(concat.AsSpan(0, rows * concatWidth), rows, concatWidth, session.Projection.OutputWeights, spec.ModelDim,
                session.Projection.OutputBias, FloatBytes.AsFloats(output.AsSpan()));
            return output;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(concat);
        }
    }

    private static TagList Tags(DecodeSessionState session) =>
        new() { { "model", session.Model }, { "layer", session.Layer } };

    private IHeadGrain Head(DecodeSessionState session, int group) =>
        GrainFactory.GetGrain<IHeadGrain>(GrainKeys.Head(session.Model, session.Layer, group));
}
