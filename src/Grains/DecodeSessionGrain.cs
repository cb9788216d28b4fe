using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;
using Microsoft.Extensions.Options;
using Orleans.Placement;

namespace Headwise.Grains;

/// <summary>
/// The lifecycle of one decode session (key: the session id), called by the gRPC gateway and by Orleans clients: open,
/// step, close, expire. What the session needs is in memory only, in this silo's <see cref="SessionRegistry"/> (so a
/// re-activation here finds it): the layer's spec, W_O and b_O, and the inputs of every token the session has seen
/// (<see cref="SessionHistory"/>). A step runs on the forward pass's path (<see cref="DecodeStepper"/>): the new rows to
/// each silo of the layer's heads once, a partial sum of W_O back from each. Placed on the silo that opens it, so the
/// gateway's call stays local.
/// A session that is closed, idle past <see cref="DecodeSessionOptions.IdleSeconds"/>, or whose coordinator's silo died
/// is gone: its calls fail with NotFound naming it.
/// </summary>
[PreferLocalPlacement]
public sealed class DecodeSessionGrain(
    SessionBudget budget,
    IOptions<DecodeSessionOptions> options,
    IOptions<ForwardLimits> limits,
    SessionRegistry registry,
    SessionProjections projections,
    DecodeStepper stepper,
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
        try
        {
            var step = await stepper.Run(Id, session, command);
            session.Position += command.Tokens;
            SessionHistory.Forget(session);
            session.LastUse = Stopwatch.GetTimestamp();
            int refilled = step.Refilled;
            activity?.SetTag("headwise.reprefilled_groups", refilled);
            activity?.SetTag("headwise.local_groups", step.LocalGroups);
            activity?.SetTag("headwise.remote_messages", step.RemoteMessages);
            var tags = Tags(session);
            HeadwiseTelemetry.DecodeMs.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, tags);
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

    private static TagList Tags(DecodeSessionState session) =>
        new() { { "model", session.Model }, { "layer", session.Layer } };

    private IHeadGrain Head(DecodeSessionState session, int group) =>
        GrainFactory.GetGrain<IHeadGrain>(GrainKeys.Head(session.Model, session.Layer, group));
}
