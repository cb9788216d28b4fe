using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Decode;

namespace Headwise.Grains.Telemetry;

/// <summary>
/// The span ("headwise.decode") and measurements of one decode step in its session's coordinator: <see cref="Complete"/>
/// on success, <see cref="Fail"/> on failure; dispose it either way.
/// </summary>
internal sealed class DecodeStepScope : IDisposable
{
    private readonly Activity? _activity;
    private readonly TagList _tags;
    private readonly long _started = Stopwatch.GetTimestamp();
    private readonly long _tokens;

    public DecodeStepScope(DecodeSessionState session, DecodeCommand command)
    {
        _tags = HeadwiseTelemetry.LayerTags(session.Model, session.Layer);
        _tokens = (long)command.Batch * command.Tokens;
        _activity = HeadwiseTelemetry.Source.StartActivity("headwise.decode");
        if (_activity is not { IsAllDataRequested: true }) return;
        _activity.SetTag("headwise.model", session.Model);
        _activity.SetTag("headwise.layer", session.Layer);
        _activity.SetTag("headwise.batch", command.Batch);
        _activity.SetTag("headwise.tokens", command.Tokens);
        _activity.SetTag("headwise.position", session.Position);
    }

    /// <summary>The step counted: tags where its heads ran and how long its parts took, records its duration and tokens.</summary>
    /// <param name="headsMs">From the fan-out's start to the partial sums added: every silo's heads and W_O, re-fills included.</param>
    /// <param name="commitMs">After the heads: waiting for the step's stored inputs, then writing the session's record.</param>
    public void Complete(StepOutcome step, double headsMs, double commitMs)
    {
        // A step's latency is mostly not arithmetic (docs/performance.md, "Where one session's step goes"): these two
        // tell the heads from the storage without a profiler.
        _activity?.SetTag(HeadwiseTelemetry.HeadsMsAttribute, Math.Round(headsMs, 3));
        _activity?.SetTag(HeadwiseTelemetry.CommitMsAttribute, Math.Round(commitMs, 3));
        _activity?.SetTag("headwise.reprefilled_groups", step.Refilled);
        _activity?.SetTag("headwise.local_groups", step.LocalGroups);
        _activity?.SetTag("headwise.remote_messages", step.RemoteMessages);
        HeadwiseTelemetry.DecodeDuration.Record(Stopwatch.GetElapsedTime(_started).TotalSeconds, _tags);
        HeadwiseTelemetry.DecodeTokens.Add(_tokens, _tags);
        if (step.Refilled > 0) HeadwiseTelemetry.DecodeRefills.Add(step.Refilled, _tags);
    }

    /// <summary>The step did not count: the span fails with <paramref name="exception"/>, the duration is recorded with its error.type.</summary>
    public void Fail(Exception exception)
    {
        HeadwiseTelemetry.RecordFailure(_activity, exception);
        var failed = _tags;
        failed.Add(HeadwiseTelemetry.ErrorTypeAttribute, HeadwiseTelemetry.ErrorType(exception));
        HeadwiseTelemetry.DecodeDuration.Record(Stopwatch.GetElapsedTime(_started).TotalSeconds, failed);
    }

    /// <summary>The trace a caller can look the step up by.</summary>
    public string TraceId => _activity?.TraceId.ToString() ?? Activity.Current?.TraceId.ToString() ?? "";

    public void Dispose() => _activity?.Dispose();
}
