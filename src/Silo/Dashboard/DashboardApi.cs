using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Silo.Telemetry;
using Orleans.Serialization.TypeSystem;

namespace Headwise.Silo.Dashboard;

/// <summary>
/// Answers the dashboard's /api/ calls from any silo: the cluster's silos from Orleans membership, the grains on
/// each from the management grain, and each silo's own account (kernel, kept spans) from its
/// <see cref="ISiloTelemetryGrain"/>. None of these calls is traced (<see cref="QuietSampler.Untraced"/>).
/// </summary>
public sealed class DashboardApi(IGrainFactory grains, SiloIdentity silo, ILogger<DashboardApi> logger)
{
    private static readonly TimeSpan SiloTimeout = TimeSpan.FromSeconds(3);

    public async Task<ClusterView> Cluster()
    {
        using var untraced = QuietSampler.Untraced();
        var management = grains.GetGrain<IManagementGrain>(0);
        var hosts = await management.GetHosts(onlyActive: true);
        var headType = grains.GetGrain<IHeadGrain>("-").GetGrainId().Type;
        var layerType = grains.GetGrain<ILayerGrain>("-").GetGrainId().Type;
        // Only the two grain classes the cards show; the type ids below pick them out whatever the filter does.
        var activations = await management.GetDetailedGrainStatistics(
            [RuntimeTypeNameFormatter.Format(typeof(HeadGrain)), RuntimeTypeNameFormatter.Format(typeof(LayerGrain))]);
        var descriptions = await Task.WhenAll(hosts.Keys.Select(address => Ask(address, g => g.Describe())));
        var models = await grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).List();

        var silos = hosts.Keys.Zip(descriptions, (address, description) =>
        {
            var here = activations.Where(a => a.SiloAddress.Equals(address)).ToList();
            var heads = here.Where(a => a.GrainId.Type.Equals(headType))
                .Select(a => ParseHead(a.GrainId.Key.ToString() ?? ""))
                .OfType<HeadPlacementView>()
                .OrderBy(h => h.Model, StringComparer.Ordinal).ThenBy(h => h.Layer).ThenBy(h => h.Group)
                .ToArray();
            var coordinators = here.Where(a => a.GrainId.Type.Equals(layerType))
                .Select(a => a.GrainId.Key.ToString() ?? "")
                .Order(StringComparer.Ordinal)
                .ToArray();
            return new SiloView(address.Endpoint.ToString(), hosts[address].ToString(), description is not null,
                description?.Kernel, description?.WebAddress, description?.Host, description?.Cores ?? 0,
                description?.WorkingSetBytes ?? 0, description?.StartedUtc, heads, coordinators, description?.DecodeBatches ?? [],
                description?.ForwardBatches ?? []);
        }).OrderBy(s => s.Silo, StringComparer.Ordinal).ToArray();

        return new ClusterView(silo.Name, DateTime.UtcNow, silos,
            models.OrderBy(m => m.Name, StringComparer.Ordinal)
                .Select(m => new ModelView(m.Name, m.Ready, m.Spec.LayerCount, m.Spec.HeadCount, m.Spec.GroupCount, m.Spec.ModelDim, m.Spec.HeadDim))
                .ToArray());
    }

    public async Task<TraceList> Traces(int limit)
    {
        using var untraced = QuietSampler.Untraced();
        var answers = await AskEverySilo(g => g.RecentHeadwiseSpans(limit));
        return new TraceList(Unreachable(answers), TraceAssembler.Summaries(answers.SelectMany(a => a.Spans ?? []), limit));
    }

    public async Task<TraceView?> Trace(string traceId)
    {
        using var untraced = QuietSampler.Untraced();
        var answers = await AskEverySilo(g => g.TraceSpans(traceId));
        return TraceAssembler.Trace(traceId, answers.SelectMany(a => a.Spans ?? []), Unreachable(answers));
    }

    private async Task<(SiloAddress Silo, SpanRecord[]? Spans)[]> AskEverySilo(Func<ISiloTelemetryGrain, Task<SpanRecord[]>> question)
    {
        var hosts = await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        var spans = await Task.WhenAll(hosts.Keys.Select(address => Ask(address, question)));
        return hosts.Keys.Zip(spans).ToArray();
    }

    private async Task<T?> Ask<T>(SiloAddress address, Func<ISiloTelemetryGrain, Task<T>> question) where T : class
    {
        try
        {
            return await question(grains.GetGrain<ISiloTelemetryGrain>(address.Endpoint.ToString())).WaitAsync(SiloTimeout);
        }
        catch (Exception e) when (e is TimeoutException or OrleansException or HeadwiseException)
        {
            // A silo that is leaving or overloaded: show what the others have.
            logger.LogDebug(e, "Silo {Silo} did not answer the dashboard", address);
            return null;
        }
    }

    private static string[] Unreachable((SiloAddress Silo, SpanRecord[]? Spans)[] answers) =>
        answers.Where(a => a.Spans is null).Select(a => a.Silo.Endpoint.ToString()).ToArray();

    private static HeadPlacementView? ParseHead(string key)
    {
        var parts = key.Split('/');
        return parts.Length >= 3 && int.TryParse(parts[^2], out int layer) && int.TryParse(parts[^1], out int group)
            ? new HeadPlacementView(string.Join('/', parts[..^2]), layer, group)
            : null;
    }
}
