using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Back-pressure at the edge: at most Headwise__MaxConcurrentForwards Forward calls and Headwise__MaxConcurrentDecodes
/// decode steps (Decode calls and DecodeStream steps alike) run in this silo's gateway at once; one more is answered RESOURCE_EXHAUSTED at once instead of joining
/// a queue that grows without bound. Clients retry it with backoff or spread load over more silos. The two are counted
/// apart because a decode step is a thousand times smaller than a forward pass and many sessions step at once.
/// </summary>
public sealed class ForwardGate : Interceptor
{
    private sealed record Slots(SemaphoreSlim Semaphore, int Limit, string Call, string Setting);

    private const string DecodeMethod = "/headwise.v1.Attention/Decode";
    private readonly Dictionary<string, Slots> _slots = [];

    public ForwardGate(IOptions<GatewayOptions> options)
    {
        Add("/headwise.v1.Attention/Forward", options.Value.MaxConcurrentForwards, "forward passes", "Headwise__MaxConcurrentForwards");
        Add(DecodeMethod, options.Value.MaxConcurrentDecodes, "decode steps", "Headwise__MaxConcurrentDecodes");
    }

    private void Add(string method, int limit, string call, string setting)
    {
        if (limit > 0) _slots[method] = new Slots(new SemaphoreSlim(limit, limit), limit, call, setting);
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        if (!_slots.TryGetValue(context.Method, out var slots)) return await continuation(request, context);
        using var slot = Enter(slots, context.Method);
        return await continuation(request, context);
    }

    /// <summary>
    /// A slot for one step of a DecodeStream (<paramref name="method"/> names the stream in the refusal), counted with
    /// unary Decode calls: a stream holds a slot while a step of it runs, not while it waits for the next.
    /// </summary>
    public Slot EnterDecodeStep(string method) =>
        _slots.TryGetValue(DecodeMethod, out var slots) ? Enter(slots, method) : default;

    private static Slot Enter(Slots slots, string method)
    {
        if (!slots.Semaphore.Wait(0))
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"{method[(method.LastIndexOf('/') + 1)..].ToLowerInvariant()}: this silo already runs {slots.Limit} {slots.Call} ({slots.Setting}); retry later."));
        return new Slot(slots.Semaphore);
    }

    /// <summary>A taken slot (or none, when no limit is set), given back on Dispose.</summary>
    public readonly struct Slot(SemaphoreSlim? semaphore) : IDisposable
    {
        public void Dispose() => semaphore?.Release();
    }
}
