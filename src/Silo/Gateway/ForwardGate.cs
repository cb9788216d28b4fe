using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Back-pressure at the edge: at most Headwise__MaxConcurrentForwards Forward calls run in this silo's gateway at
/// once; one more is answered RESOURCE_EXHAUSTED at once instead of joining a queue that grows without bound.
/// Clients retry it with backoff or spread load over more silos.
/// </summary>
public sealed class ForwardGate : Interceptor
{
    private const string ForwardMethod = "/headwise.v1.Attention/Forward";
    private readonly SemaphoreSlim? _slots;
    private readonly int _limit;

    public ForwardGate(IOptions<GatewayOptions> options)
    {
        _limit = options.Value.MaxConcurrentForwards;
        _slots = _limit > 0 ? new SemaphoreSlim(_limit, _limit) : null;
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        if (_slots is null || context.Method != ForwardMethod) return await continuation(request, context);
        if (!_slots.Wait(0))
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"forward: this silo already runs {_limit} forward passes (Headwise__MaxConcurrentForwards); retry later."));
        try
        {
            return await continuation(request, context);
        }
        finally
        {
            _slots.Release();
        }
    }
}
