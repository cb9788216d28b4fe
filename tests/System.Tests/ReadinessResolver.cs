using Grpc.Net.Client.Balancer;
using Headwise.TestSupport;
using Microsoft.Extensions.Logging.Abstractions;

namespace Headwise.SystemTests;

/// <summary>
/// What a load balancer or Kubernetes' endpoints give a gRPC client: the gateways whose /healthz says ok, looked at
/// every 200 ms. The client balances its calls over those (round robin) and has no retry policy of its own. As with a
/// readiness probe's failure threshold, a gateway that does not answer a probe in time keeps its last verdict until three
/// probes in a row have timed out (a stalled test machine made one slow probe drop a live gateway); one that answers
/// not-ready, or refuses the connection, is dropped at once.
/// </summary>
internal sealed class ReadinessResolver : PollingResolver
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(1) };
    private const int TimeoutsToDrop = 3;
    private readonly IReadOnlyList<SiloProcess> _gateways;
    private readonly Timer _timer;
    private readonly Dictionary<SiloProcess, (bool Ready, int Timeouts)> _last = [];

    public ReadinessResolver(IReadOnlyList<SiloProcess> gateways) : base(NullLoggerFactory.Instance)
    {
        _gateways = gateways;
        _timer = new Timer(_ => Refresh(), null, TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(200));
    }

    protected override async Task ResolveAsync(CancellationToken cancellationToken)
    {
        var ready = await Task.WhenAll(_gateways.Select(async gateway =>
        {
            bool? verdict;
            try
            {
                using var response = await Http.GetAsync(new Uri(gateway.WebAddress, "/healthz"), cancellationToken);
                verdict = response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                verdict = false;
            }
            catch (TaskCanceledException)
            {
                verdict = cancellationToken.IsCancellationRequested ? false : null; // null: timed out
            }
            lock (_last)
            {
                var last = _last.GetValueOrDefault(gateway);
                _last[gateway] = verdict is { } answered ? (answered, 0)
                    : last.Timeouts + 1 >= TimeoutsToDrop ? (false, last.Timeouts + 1) : (last.Ready, last.Timeouts + 1);
                return _last[gateway].Ready ? gateway : null;
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
