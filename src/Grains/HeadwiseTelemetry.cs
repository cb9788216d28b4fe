using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Headwise.Grains;

/// <summary>The one ActivitySource and Meter of Headwise; exporters subscribe to <see cref="Name"/>.</summary>
public static class HeadwiseTelemetry
{
    public const string Name = "Headwise";

    public static readonly ActivitySource Source = new(Name);

    public static readonly Meter Meter = new(Name);

    /// <summary>Kernel time of one head group, per forward pass.</summary>
    public static readonly Histogram<double> HeadComputeMs =
        Meter.CreateHistogram<double>("headwise.head.compute", "ms", "Kernel time of one head group per forward pass");

    /// <summary>Wall time of one forward pass in the coordinator.</summary>
    public static readonly Histogram<double> ForwardMs =
        Meter.CreateHistogram<double>("headwise.forward.duration", "ms", "Time of one forward pass in the coordinator");
}
