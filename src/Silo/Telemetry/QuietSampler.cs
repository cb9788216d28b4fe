using OpenTelemetry.Trace;

namespace Headwise.Silo.Telemetry;

/// <summary>
/// Samples like <paramref name="inner"/> (the sampler OTEL_TRACES_SAMPLER names, <see cref="ConfiguredSampler"/>), except
/// that nothing is recorded while <see cref="Untraced"/> is in effect. The dashboard's own grain calls (every two seconds,
/// on every silo) use it so they make no traces: the marker travels in Orleans' RequestContext, so the silo that
/// receives such a call records nothing either.
/// </summary>
public sealed class QuietSampler(Sampler inner) : Sampler
{
    private const string Key = "headwise.untraced";

    public override SamplingResult ShouldSample(in SamplingParameters samplingParameters) =>
        RequestContext.Get(Key) is true ? new SamplingResult(SamplingDecision.Drop) : inner.ShouldSample(samplingParameters);

    /// <summary>Until disposed, spans in this flow (and in the grain calls it makes) are dropped.</summary>
    public static IDisposable Untraced()
    {
        RequestContext.Set(Key, true);
        return new Scope();
    }

    private sealed class Scope : IDisposable
    {
        public void Dispose() => RequestContext.Remove(Key);
    }
}
