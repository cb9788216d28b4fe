using System.Globalization;
using OpenTelemetry.Trace;

namespace Headwise.Silo.Telemetry;

/// <summary>
/// The sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name, read as the OpenTelemetry SDK reads them (from
/// configuration: environment variables or appsettings.json) with the specification's values. The SDK would pick it
/// itself, but the silo sets its own sampler (<see cref="QuietSampler"/>, which keeps the dashboard's polling out of the
/// traces) and a sampler set in code replaces the SDK's choice: so the silo makes that choice here and wraps it.
/// Unlike the SDK, which falls back to the default with a log line, an unknown name or a bad ratio stops the start.
/// </summary>
public static class ConfiguredSampler
{
    public const string SamplerVariable = "OTEL_TRACES_SAMPLER";
    public const string ArgumentVariable = "OTEL_TRACES_SAMPLER_ARG";

    /// <summary>The sampler configured, or the specification's default parentbased_always_on when none is.</summary>
    public static Sampler From(IConfiguration configuration, out IReadOnlyList<string> problems)
    {
        string name = (configuration[SamplerVariable] ?? "").Trim().ToLowerInvariant();
        string? argument = configuration[ArgumentVariable];
        var found = new List<string>();
        problems = found;
        double Ratio()
        {
            if (string.IsNullOrWhiteSpace(argument)) return 1.0; // the specification's default ratio
            if (double.TryParse(argument, NumberStyles.Float, CultureInfo.InvariantCulture, out double ratio) && ratio is >= 0 and <= 1)
                return ratio;
            found.Add($"{ArgumentVariable} is '{argument}'; {SamplerVariable}={name} needs a ratio in 0..1, such as 0.1.");
            return 1.0;
        }
        Sampler sampler = name switch
        {
            "" or "parentbased_always_on" => new ParentBasedSampler(new AlwaysOnSampler()),
            "always_on" => new AlwaysOnSampler(),
            "always_off" => new AlwaysOffSampler(),
            "parentbased_always_off" => new ParentBasedSampler(new AlwaysOffSampler()),
            "traceidratio" => new TraceIdRatioBasedSampler(Ratio()),
            "parentbased_traceidratio" => new ParentBasedSampler(new TraceIdRatioBasedSampler(Ratio())),
            _ => Unknown(),
        };
        return sampler;

        Sampler Unknown()
        {
            found.Add($"{SamplerVariable} is '{configuration[SamplerVariable]}'; use always_on, always_off, traceidratio, " +
                      "parentbased_always_on (the default), parentbased_always_off or parentbased_traceidratio.");
            return new ParentBasedSampler(new AlwaysOnSampler());
        }
    }
}
