using System.Diagnostics;
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
/// step, close, expire. What outlives its silo is kept by <see cref="SessionLog"/> (the session's record and the inputs
/// seen, written before a step's answer is returned); an activation on any silo rebuilds the session from it
/// (<see cref="SessionRebuild"/>). A step runs on the forward pass's path (<see cref="DecodeStepper"/>): the new rows to
/// each silo of the layer's heads once, a partial sum of W_O back from each. Placed on the silo that opens it, so the
/// gateway's call stays local. A session that is closed or idle past <see cref="DecodeSessionOptions.IdleSeconds"/> is
/// gone: its storage is cleared, every silo drops its caches (<see cref="SessionCacheLeases"/>), and its calls fail
/// with NotFound naming it.
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
    private SessionLog? _log;

    private string Id => this.GetPrimaryKeyString();
    private ISessionIndexGrain IndexShard => GrainFactory.GetGrain<ISessionIndexGrain>(SessionIndex.ShardOf(Id));
    private OpenSessionCount OpenSessions => ServiceProvider.GetRequiredService<OpenSessionCount>();
    private SessionLog Log => _log ??= new SessionLog(record,
        ServiceProvider.GetRequiredKeyedService<IGrainStorage>(StorageNames.Weights), Id, options.Value.InputSegmentBytes);

    public async Task<SessionInfo> Open(string model, int layer, int maxTokens)
    {
        if (Log.Exists)
            throw new HeadwiseException(ErrorCode.AlreadyExists, $"session '{Id}' is already open.");
        ModelName.Validate(model, "model");
        OpenSessions.CheckRoom();
        var limit = options.Value;
        if (maxTokens < 0 || maxTokens > limit.MaxTokens)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"max_tokens must be 0 (default {limit.DefaultMaxTokens}) or in 1..{limit.MaxTokens} (Headwise__Sessions__MaxTokens), got {maxTokens}.");
        var (projection, shared) = await projections.Fetch(GrainFactory, model, layer);
        // Listed before its record exists: a session whose coordinator dies is still ended once idle (SessionSweeper).
        await IndexShard.Add(Id);
        var session = new DecodeSessionState
        {
            Model = model,
            Layer = layer,
            MaxTokens = maxTokens == 0 ? limit.DefaultMaxTokens : maxTokens,
            Spec = projection.Spec,
            Projection = shared,
        };
        await Log.Open(new SessionRecord
        {
            Model = model,
            Layer = layer,
            MaxTokens = session.MaxTokens,
            HeadVersions = projection.HeadVersions,
            LastUseUtc = DateTime.UtcNow,
        });
        Serve(session);
        return new SessionInfo { Session = Id, MaxTokens = session.MaxTokens };
    }

    public async Task<DecodeResult> Decode(DecodeCommand command)
    {
        var session = await Require();
        if (command.ExpectedPosition is int expected && expected != session.Position)
            return Log.Replay(command, expected);
        session.LastUse = Stopwatch.GetTimestamp();
        // Orleans' own idle collection must not end the session before IdleSeconds do.
        DelayDeactivation(TimeSpan.FromSeconds(options.Value.IdleSeconds + 60));
        InputValidator.DecodeStep(command, session.Spec, limits.Value, Id, session.Model, session.Batch, session.Position, session.MaxTokens);

        using var scope = new DecodeStepScope(session, command);
        // Inputs are kept before the heads are called, so a head that must be re-filled gets this step's rows too.
        SessionHistory.Remember(session, command, budget, Id);
        // The rows are stored while the heads compute; both must be done before the step counts.
        var pending = Log.Begin(session, command);
        try
        {
            long started = Stopwatch.GetTimestamp();
            var step = await stepper.Run(Id, session, command);
            long computed = Stopwatch.GetTimestamp();
            await Log.Commit(pending, session, command, step.Output);
            session.Position += command.Tokens;
            SessionHistory.Forget(session);
            session.LastUse = Stopwatch.GetTimestamp();
            scope.Complete(step, Stopwatch.GetElapsedTime(started, computed).TotalMilliseconds,
                Stopwatch.GetElapsedTime(computed, session.LastUse).TotalMilliseconds);
            return new DecodeResult
            {
                Output = step.Output,
                ModelDim = session.Spec.ModelDim,
                Position = session.Position,
                ReprefilledGroups = step.Refilled,
                LocalGroups = step.LocalGroups,
                RemoteMessages = step.RemoteMessages,
                TraceId = scope.TraceId,
            };
        }
        catch (Exception e)
        {
            scope.Fail(e);
            // Heads that did append are now ahead of the session and are re-filled on the next step (they answer "no
            // cache at this position").
            await Log.Abandon(pending, session);
            // The record's write landed after all, or cannot be read back: the next call rebuilds the session from storage,
            // so a retry of this step is answered from the record if it landed and applied once if not. This activation
            // would re-run it and fail on the stale ETag.
            if (Log.RecordUncertain) DeactivateOnIdle();
            throw;
        }
    }

    public async Task Close()
    {
        if (!Log.Exists) throw Gone();
        await End();
    }

    public async Task EndIfIdle()
    {
        if (_session is not null) return; // this activation's own timer ends it once idle
        // An Open whose record write threw may have landed all the same: only storage says whether the id is gone.
        if (!Log.Exists) await record.ReadStateAsync();
        if (!Log.Exists)
        {
            // Removed here, in this grain's turn: an Open of the same id cannot slip in between.
            await IndexShard.Remove(Id);
            DeactivateOnIdle();
            return;
        }
        if ((DateTime.UtcNow - Log.Stored.LastUseUtc).TotalSeconds > options.Value.IdleSeconds)
        {
            await End();
            return;
        }
        // Its caller may still come back (to an activation rebuilt then); the next sweep looks again.
        DeactivateOnIdle();
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        Unserve();
        return Task.CompletedTask;
    }

    // Ends the session: its stored inputs and record first (a failure leaves the session whole for a retried Close),
    // then every silo's caches of it.
    private async Task End()
    {
        await Log.Clear();
        Unserve();
        await SessionCacheLeases.DropEverywhere(GrainFactory, Id);
        DeactivateOnIdle();
        try { await IndexShard.Remove(Id); }
        catch (Exception) { } // the next sweep finds no record and drops the id
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
        SessionCacheLeases.Renew(GrainFactory, session, Id);
    }

    private async Task<DecodeSessionState> Require()
    {
        if (_session is { } session)
        {
            EnsureTimer();
            return session;
        }
        if (!Log.Exists)
        {
            // An unknown id costs one storage read: the activation does not linger.
            DeactivateOnIdle();
            throw Gone();
        }
        if ((DateTime.UtcNow - Log.Stored.LastUseUtc).TotalSeconds > options.Value.IdleSeconds)
        {
            await End();
            throw Gone();
        }
        session = await SessionRebuild.Run(Log, GrainFactory, projections, budget, Id);
        Serve(session);
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
