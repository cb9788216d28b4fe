using System.Diagnostics;
using System.Security.Cryptography;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Forward;
using Headwise.Grains.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Placement;
using Orleans.Storage;

namespace Headwise.Grains;

/// <summary>
/// The lifecycle of one decode session (key: the session id), called by the gRPC gateway and by Orleans clients: open,
/// step, close, expire. What outlives its silo is in grain storage, written before a step's answer is returned: the
/// <see cref="SessionRecord"/> (layer, limits, batch, position, weights versions, the last step) and the inputs seen,
/// in fixed-size segments (<see cref="SessionInputs"/>). An activation on any silo rebuilds the session from them; heads
/// that lost their K/V cache are re-filled from the inputs. A step runs on the forward pass's path
/// (<see cref="DecodeStepper"/>): the new rows to each silo of the layer's heads once, a partial sum of W_O back from
/// each. Placed on the silo that opens it, so the gateway's call stays local.
/// A session that is closed or idle past <see cref="DecodeSessionOptions.IdleSeconds"/> is gone: its storage is
/// cleared, every silo drops its caches, and its calls fail with NotFound naming it.
/// </summary>
[PreferLocalPlacement]
public sealed class DecodeSessionGrain(
    [PersistentState(DecodeSessionGrain.RecordStateName, StorageNames.Weights)] IPersistentState<SessionRecord> record,
    SessionBudget budget,
    IOptions<DecodeSessionOptions> options,
    IOptions<ForwardLimits> limits,
    SessionProjections projections,
    DecodeStepper stepper,
    SiloIdentity silo) : Grain, IDecodeSessionGrain
{
    /// <summary>The name the session's <see cref="SessionRecord"/> is stored under (gateways read it to tell a live id from a made-up one).</summary>
    public const string RecordStateName = "session";

    private IGrainTimer? _timer;
    private DecodeSessionState? _session;
    private SessionInputs? _inputs;

    private string Id => this.GetPrimaryKeyString();
    private OpenSessionCount OpenSessions => ServiceProvider.GetRequiredService<OpenSessionCount>();
    private IGrainStorage Storage => ServiceProvider.GetRequiredKeyedService<IGrainStorage>(StorageNames.Weights);

    public async Task<SessionInfo> Open(string model, int layer, int maxTokens)
    {
        if (record.RecordExists)
            throw new HeadwiseException(ErrorCode.AlreadyExists, $"session '{Id}' is already open.");
        ModelName.Validate(model, "model");
        OpenSessions.CheckRoom();
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
        record.State = new SessionRecord
        {
            Model = model,
            Layer = layer,
            MaxTokens = session.MaxTokens,
            HeadVersions = projection.HeadVersions,
            LastUseUtc = DateTime.UtcNow,
        };
        await record.WriteStateAsync();
        Serve(session);
        return new SessionInfo { Session = Id, MaxTokens = session.MaxTokens };
    }

    public async Task<DecodeResult> Decode(DecodeCommand command)
    {
        var session = await Require();
        var stored = record.State;
        if (command.ExpectedPosition is int expected && expected != session.Position)
            return Replay(command, expected, stored);
        session.LastUse = Stopwatch.GetTimestamp();
        // Orleans' own idle collection must not end the session before IdleSeconds do.
        DelayDeactivation(TimeSpan.FromSeconds(options.Value.IdleSeconds + 60));
        var spec = session.Spec;
        InputValidator.DecodeStep(command, spec, limits.Value, Id, session.Model, session.Batch, session.Position, session.MaxTokens);

        using var activity = HeadwiseTelemetry.Source.StartActivity("headwise.decode");
        activity?.SetTag("headwise.model", session.Model);
        activity?.SetTag("headwise.layer", session.Layer);
        activity?.SetTag("headwise.batch", command.Batch);
        activity?.SetTag("headwise.tokens", command.Tokens);
        activity?.SetTag("headwise.position", session.Position);

        long started = Stopwatch.GetTimestamp();
        // Inputs are kept before the heads are called, so a head that must be re-filled gets this step's rows too.
        SessionHistory.Remember(session, command, budget, Id);
        int segmentTokens = stored.SegmentTokens > 0
            ? stored.SegmentTokens
            : SessionInputs.TokensPerSegment(command.Batch, spec.ModelDim, options.Value.InputSegmentBytes);
        _inputs ??= new SessionInputs(Storage, Id, command.Batch, spec.ModelDim, segmentTokens);
        // The rows are stored while the heads compute; both must be done before the step counts.
        var inputsStored = _inputs.WriteAsync(session.Position, command.Tokens, command.Input, stored.InputTail);
        try
        {
            var step = await stepper.Run(Id, session, command);
            var tail = await inputsStored;
            record.State = stored with
            {
                InputTail = tail,
                InputTailSlots = Math.Max(stored.InputTailSlots, tail.Length),
                Batch = command.Batch,
                ModelDim = spec.ModelDim,
                SegmentTokens = segmentTokens,
                Position = session.Position + command.Tokens,
                LastUseUtc = DateTime.UtcNow,
                LastStep = new SessionStepRecord
                {
                    Before = session.Position,
                    Tokens = command.Tokens,
                    InputDigest = Digest(command),
                    Output = command.ExpectedPosition is null ? null : step.Output,
                    ModelDim = spec.ModelDim,
                },
            };
            try
            {
                await record.WriteStateAsync();
            }
            catch
            {
                record.State = stored;
                throw;
            }
            session.Position += command.Tokens;
            SessionHistory.Forget(session);
            session.LastUse = Stopwatch.GetTimestamp();
            int refilled = step.Refilled;
            activity?.SetTag("headwise.reprefilled_groups", refilled);
            activity?.SetTag("headwise.local_groups", step.LocalGroups);
            activity?.SetTag("headwise.remote_messages", step.RemoteMessages);
            var tags = Tags(session);
            HeadwiseTelemetry.DecodeDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
            HeadwiseTelemetry.DecodeTokens.Add((long)command.Batch * command.Tokens, tags);
            if (refilled > 0) HeadwiseTelemetry.DecodeRefills.Add(refilled, tags);
            return new DecodeResult
            {
                Output = step.Output,
                ModelDim = spec.ModelDim,
                Position = session.Position,
                ReprefilledGroups = refilled,
                LocalGroups = step.LocalGroups,
                RemoteMessages = step.RemoteMessages,
                TraceId = Activity.Current?.TraceId.ToString() ?? "",
            };
        }
        catch (Exception e)
        {
            HeadwiseTelemetry.RecordFailure(activity, e);
            var failed = Tags(session);
            failed.Add(HeadwiseTelemetry.ErrorTypeAttribute, HeadwiseTelemetry.ErrorType(e));
            HeadwiseTelemetry.DecodeDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, failed);
            // The step did not happen; its rows past Position are ignored, in memory and in storage. Heads that did
            // append are now ahead of the session and are re-filled on the next step (they answer "no cache at this
            // position"). The input write must be over before the next step writes the same segment.
            try { await inputsStored; }
            catch (Exception) { } // the step's own failure is the one the caller gets
            if (session.Position == 0)
            {
                session.Batch = 0;
                _inputs = null; // the next first step may bring another batch, hence other segments
            }
            throw;
        }
    }

    public async Task Close()
    {
        if (!record.RecordExists) throw Gone();
        await End();
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        Unserve();
        return Task.CompletedTask;
    }

    // A retried step: answered from the record when it is the last one applied, never applied again.
    private DecodeResult Replay(DecodeCommand command, int expected, SessionRecord stored)
    {
        int position = stored.Position;
        if (stored.LastStep is { } last && last.Before == expected && last.Tokens == command.Tokens
            && last.InputDigest.AsSpan().SequenceEqual(Digest(command)))
        {
            if (last.Output is { } output)
                return new DecodeResult { Output = output, ModelDim = last.ModelDim, Position = position, Replayed = true };
            throw new HeadwiseException(ErrorCode.FailedPrecondition,
                $"session '{Id}' already applied this step at position {expected} (it is at position {position} now); " +
                "its answer was not kept because the step came without an expected position.");
        }
        throw new HeadwiseException(ErrorCode.FailedPrecondition,
            $"session '{Id}' is at position {position}, not at the expected position {expected}; nothing was applied. " +
            (expected < position
                ? "Only a retry of the last step (same expected position, same input) is answered again."
                : "Positions count the tokens the session has seen; send the steps in order."));
    }

    // Ends the session: stored inputs first (a failure leaves the session whole for a retried Close), then its record,
    // then every silo's caches of it.
    private async Task End()
    {
        var stored = record.State;
        if (stored.SegmentTokens > 0)
        {
            var inputs = _inputs ?? new SessionInputs(Storage, Id, stored.Batch, stored.ModelDim, stored.SegmentTokens);
            await inputs.ClearAsync(stored.Position, stored.InputTailSlots);
        }
        await record.ClearStateAsync();
        _inputs = null;
        Unserve();
        await DropCachesEverywhere();
        DeactivateOnIdle();
    }

    // Every active silo, not only those of the layer's heads now: a head that moved or was re-filled elsewhere left a
    // cache behind on its old silo.
    private async Task DropCachesEverywhere()
    {
        var hosts = await GrainFactory.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        await Task.WhenAll(hosts.Keys.Select(async address =>
        {
            try
            {
                await GrainFactory.GetGrain<ISiloRelayGrain>(GrainKeys.Relay(address.Endpoint.ToString())).DropSessionCaches(Id)
                    .WaitAsync(TimeSpan.FromSeconds(5));
            }
            catch (Exception)
            {
                // A silo that is leaving takes its caches with it; one that hangs drops them when they are idle.
            }
        }));
    }

    // An open session's idle caches keep their lease while it lasts; an idle session ends.
    private async Task ExpireWhenIdle(CancellationToken cancellationToken)
    {
        if (_session is not { } session) return;
        var idle = Stopwatch.GetElapsedTime(session.LastUse);
        if (idle.TotalSeconds > options.Value.IdleSeconds)
        {
            await End();
            return;
        }
        if (idle < TimerPeriod) return; // its steps renewed the leases
        foreach (var headSilo in session.HeadSilos.Where(s => s.Length > 0).Distinct())
            _ = GrainFactory.GetGrain<ISiloRelayGrain>(GrainKeys.Relay(headSilo)).RenewSessionCaches(Id);
    }

    private async Task<DecodeSessionState> Require()
    {
        if (_session is { } session)
        {
            EnsureTimer();
            return session;
        }
        if (!record.RecordExists)
        {
            // An unknown id costs one storage read: the activation does not linger.
            DeactivateOnIdle();
            throw Gone();
        }
        if ((DateTime.UtcNow - record.State.LastUseUtc).TotalSeconds > options.Value.IdleSeconds)
        {
            await End();
            throw Gone();
        }
        session = await Rebuild(record.State);
        Serve(session);
        return session;
    }

    // The coordinator of a session opened elsewhere (its silo died, or its activation was collected): the layer's
    // W_O from the layer grain, the kept inputs from storage. The heads keep their caches where they survived.
    private async Task<DecodeSessionState> Rebuild(SessionRecord stored)
    {
        var projection = await GrainFactory.GetGrain<ILayerGrain>(GrainKeys.Layer(stored.Model, stored.Layer)).GetProjection();
        if (!projection.HeadVersions.AsSpan().SequenceEqual(stored.HeadVersions))
            throw new HeadwiseException(ErrorCode.FailedPrecondition,
                $"the weights of model '{stored.Model}' layer {stored.Layer} were uploaded again after session '{Id}' opened: " +
                "its inputs belong to the old weights. Close it and open a new session.");
        var session = new DecodeSessionState
        {
            Model = stored.Model,
            Layer = stored.Layer,
            MaxTokens = stored.MaxTokens,
            Spec = projection.Spec,
            Projection = projections.Get(stored.Model, stored.Layer, projection),
            Batch = stored.Batch,
            Position = stored.Position,
        };
        if (stored.Batch == 0) return session;
        var inputs = new SessionInputs(Storage, Id, stored.Batch, stored.ModelDim, stored.SegmentTokens);
        // Sliding window: no later query sees further back than window − 1 tokens; the first segment is read whole.
        int window = projection.Spec.Window;
        int from = window > 0 ? Math.Max(0, stored.Position - (window - 1)) : 0;
        from = from / stored.SegmentTokens * stored.SegmentTokens;
        long bytes = (long)(stored.Position - from) * stored.ModelDim * sizeof(float) * stored.Batch;
        budget.Reserve(Id, bytes);
        try
        {
            session.History = await inputs.ReadAsync(from, stored.Position, stored.InputTail);
        }
        catch
        {
            budget.Release(bytes);
            throw;
        }
        session.HistoryStart = from;
        session.ReservedBytes = bytes;
        _inputs = inputs;
        return session;
    }

    private void Serve(DecodeSessionState session)
    {
        _session = session;
        OpenSessions.Opened();
        HeadwiseTelemetry.OpenSessions.Add(1, Tags(session));
        EnsureTimer();
        DelayDeactivation(TimeSpan.FromSeconds(options.Value.IdleSeconds + 60));
    }

    private void Unserve()
    {
        if (_session is not { } session) return;
        _session = null;
        budget.Release(session.ReservedBytes);
        OpenSessions.Closed();
        HeadwiseTelemetry.OpenSessions.Add(-1, Tags(session));
    }

    private HeadwiseException Gone() => new(ErrorCode.NotFound,
        $"session '{Id}' not found (asked on silo {silo.Name}): it was closed, expired after {options.Value.IdleSeconds} s idle, " +
        "or never opened; open a new session.");

    private static byte[] Digest(DecodeCommand command)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(BitConverter.GetBytes(command.Batch));
        sha.AppendData(BitConverter.GetBytes(command.Tokens));
        sha.AppendData(command.Input);
        return sha.GetHashAndReset();
    }

    // Every activation that serves the session watches its idleness (a re-activation too).
    private void EnsureTimer()
    {
        if (_timer is not null) return;
        _timer = this.RegisterGrainTimer(ExpireWhenIdle, new GrainTimerCreationOptions(TimerPeriod, TimerPeriod) { Interleave = false });
    }

    // Four times per idle period, three per cache lease.
    private TimeSpan TimerPeriod => TimeSpan.FromSeconds(
        Math.Clamp(Math.Min(options.Value.IdleSeconds / 4.0, options.Value.CacheLeaseSeconds / 3.0), 0.25, 60));

    private static TagList Tags(DecodeSessionState session) => HeadwiseTelemetry.LayerTags(session.Model, session.Layer);
}
