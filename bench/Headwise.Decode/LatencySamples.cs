using System.Globalization;

namespace Headwise.Decode;

/// <summary>Sorted latencies in milliseconds and the percentiles the bench prints.</summary>
internal sealed class LatencySamples(IEnumerable<double> milliseconds)
{
    private readonly double[] _sorted = milliseconds.Order().ToArray();

    public int Count => _sorted.Length;
    public double P50 => Percentile(0.50);
    public double P99 => Percentile(0.99);
    public double Min => _sorted[0];

    /// <summary>Both sets of samples as one.</summary>
    public LatencySamples With(LatencySamples other) => new(_sorted.Concat(other._sorted));

    public double Percentile(double quantile) =>
        _sorted[Math.Clamp((int)Math.Ceiling(quantile * _sorted.Length) - 1, 0, _sorted.Length - 1)];

    public static string Ms(double value) => value.ToString("F3", CultureInfo.InvariantCulture);

    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
}
