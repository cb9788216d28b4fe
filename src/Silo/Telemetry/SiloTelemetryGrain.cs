using Headwise.Grains.Forward;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using Headwise.Grains;
using Headwise.Grains.Placement;
using Headwise.Kernels;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;

namespace Headwise.Silo.Telemetry;

/// <summary>
/// One per silo (key: the silo's endpoint, "127.0.0.1:11111"), placed on that silo: it answers for that silo's
/// process, what it runs and the spans it kept (<see cref="RecentTraces"/>), so any silo's dashboard can show them all.
/// </summary>
public interface ISiloTelemetryGrain : IGrainWithStringKey
{
    Task<SiloDescription> Describe();
    /// <summary>Headwise spans of this silo's newest traces that have any.</summary>
    Task<SpanRecord[]> RecentHeadwiseSpans(int traces);
    /// <summary>Every span this silo kept of one trace.</summary>
    Task<SpanRecord[]> TraceSpans(string traceId);
}

/// <summary>What a silo says about itself on the dashboard.</summary>
[GenerateSerializer, Immutable, Alias("headwise.silo-description")]
public sealed record SiloDescription
{
    [Id(0)] public required string Silo { get; init; }
    /// <summary>The kernel its head grains run ("simd", "reference", …).</summary>
    [Id(1)] public required string Kernel { get; init; }
    /// <summary>Its dashboard, e.g. http://127.0.0.1:5080/.</summary>
    [Id(2)] public required string WebAddress { get; init; }
    [Id(3)] public required string GrpcAddress { get; init; }
    [Id(4)] public required string Host { get; init; }
    [Id(5)] public int ProcessId { get; init; }
    [Id(6)] public int Cores { get; init; }
    [Id(7)] public long WorkingSetBytes { get; init; }
    [Id(8)] public DateTime StartedUtc { get; init; }
    [Id(9)] public required string Runtime { get; init; }
    /// <summary>Its decode batches per layer (<see cref="StepBatcher.Stats"/>).</summary>
    [Id(10)] public BatchView[] DecodeBatches { get; init; } = [];
    /// <summary>The forward batches of the passes it coordinated, per layer (<see cref="ForwardBatcher.Stats"/>).</summary>
    [Id(11)] public BatchView[] ForwardBatches { get; init; } = [];
}

[SiloBoundPlacement, Reentrant]
public sealed class SiloTelemetryGrain(
    RecentTraces recent,
    IHeadKernel kernel,
    SiloIdentity silo,
    ILocalSiloDetails details,
    StepBatcher steps,
    ForwardBatcher forwards,
    IOptions<SiloOptions> options) : Grain, ISiloTelemetryGrain
{
    public Task<SiloDescription> Describe()
    {
        var settings = options.Value;
        using var process = Process.GetCurrentProcess();
        return Task.FromResult(new SiloDescription
        {
            Silo = silo.Name,
            Kernel = kernel.Name,
            WebAddress = $"http://{Reachable(settings.ListenAddress)}:{settings.WebPort}/",
            GrpcAddress = $"http://{Reachable(settings.ListenAddress)}:{settings.GrpcPort}",
            Host = Environment.MachineName,
            ProcessId = Environment.ProcessId,
            Cores = Environment.ProcessorCount,
            WorkingSetBytes = process.WorkingSet64,
            StartedUtc = process.StartTime.ToUniversalTime(),
            Runtime = RuntimeInformation.FrameworkDescription,
            DecodeBatches = steps.Stats.Snapshot(),
            ForwardBatches = forwards.Stats.Snapshot(),
        });
    }

    public Task<SpanRecord[]> RecentHeadwiseSpans(int traces) => Task.FromResult(recent.RecentHeadwiseSpans(Math.Clamp(traces, 1, 1000)));

    public Task<SpanRecord[]> TraceSpans(string traceId) => Task.FromResult(recent.TraceSpans(traceId));

    // A silo listening on every address is reached at the address it advertises to the cluster.
    private string Reachable(string listenAddress) =>
        IPAddress.TryParse(listenAddress, out var address) && (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
            ? details.SiloAddress.Endpoint.Address.ToString()
            : listenAddress;
}
