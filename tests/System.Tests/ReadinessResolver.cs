using Grpc.Net.Client.Balancer;
using Headwise.TestSupport;
using Microsoft.Extensions.Logging.Abstractions;

namespace Headwise.SystemTests;

/// <summary>
/// What a load balancer or Kubernetes' endpoints give a gRPC client: the gateways whose /healthz says ok, looked at
/// every 200 ms. The client balances its calls over those (round robin) and has no retry policy of its own.
/// </summary>
internal sealed class ReadinessResolver : PollingResolver
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(1) };
    private readonly IReadOnlyList<SiloProcess> _gateways;
    private readonly Timer _timer;

    public ReadinessResolver(IReadOnlyList<SiloProcess> gateways) : base(NullLoggerFactory.Instance)
    {
        _gateways = gateways;
        _timer = new Timer(_ => Refresh(), null, TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(200));
    }

    protected override async Task ResolveAsync(CancellationToken cancellationToken)
    {
        var ready = await Task.WhenAll(_gateways.Select(async gateway =>
        {
            try
            {
                using var response = await Http.GetAsync(new Uri(gateway.WebAddress, "/healthz"), cancellationToken);
                return response.IsSuccessStatusCode ? gateway : null;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return null;
            }
        }));
        Listener(ResolverResult.ForResult(ready.OfType<SiloProcess>()
            .Select(g => new BalancerAddress(g.GrpcAddress.Host, g.GrpcAddress.Port)).ToArray()));
    }

    protected override void Dispose(bool disposing)
    {
        _timer.Dispose();
        base.Dispose(disposing);
    }

    public sealed class Factory(IReadOnlyList<SiloProcess> gateways) : ResolverFactory
    {
        public override string Name => "ready";

        public override Resolver Create(ResolverOptions options) => new ReadinessResolver(gateways);
    }
}
