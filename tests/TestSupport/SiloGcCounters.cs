using System.Globalization;

namespace Headwise.TestSupport;

/// <summary>
/// A silo's own garbage-collector counters, read from its Prometheus endpoint (/metrics): the managed bytes it has
/// allocated and its gen-2 collections so far. The benches take two readings around a run and divide.
/// </summary>
public static class SiloGcCounters
{
    /// <summary>dotnet_gc_heap_total_allocated_bytes_total and dotnet_gc_collections_total{gc_heap_generation="gen2"}.</summary>
    public static async Task<(long Allocated, long Gen2)> ReadAsync(HttpClient http, CancellationToken cancellationToken = default)
    {
        long allocated = -1, gen2 = -1;
        foreach (var line in (await http.GetStringAsync("/metrics", cancellationToken)).Split('\n'))
        {
            if (line.StartsWith("dotnet_gc_heap_total_allocated_bytes_total", StringComparison.Ordinal)) allocated = Value(line);
            else if (line.StartsWith("dotnet_gc_collections_total", StringComparison.Ordinal) && line.Contains("gen2", StringComparison.Ordinal)) gen2 = Value(line);
        }
        if (allocated < 0 || gen2 < 0) throw new InvalidOperationException("the silo's /metrics has no dotnet_gc_heap_total_allocated_bytes_total or gen-2 collection count.");
        return (allocated, gen2);

        static long Value(string line) => (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
    }
}
