using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Headwise.Kernels;
using Orleans.Concurrency;

namespace Headwise.Grains;

/// <summary>
/// The per-silo fan-out: a forward pass's coordinator (<see cref="ForwardCoordinatorGrain"/>) sends X once to the relay
/// of each remote silo (or of each child in the broadcast tree), which runs the silo's part of the pass
/// (<see cref="SiloPass"/>) and answers with one partial sum of W_O. It holds no state, so it interleaves the forward
/// passes of every layer. A decode step of a session takes the same path, and a closed session's caches are dropped here.
/// </summary>
[SiloBoundPlacement, Reentrant]
public sealed class SiloRelayGrain(CancelledForwards cancelled, SiloPass pass, Decode.SessionCaches caches) : Grain, ISiloRelayGrain
{
    public Task RenewSessionCaches(string session)
    {
        caches.Renew(session);
        return Task.CompletedTask;
    }

    public Task DropSessionCaches(string session)
    {
        caches.DropSession(session);
        return Task.CompletedTask;
    }

    public Task Cancel(Guid forwardId)
    {
        cancelled.Cancel(forwardId);
        return Task.CompletedTask;
    }

    public Task<int> Echo(byte[] payload) => Task.FromResult(payload.Length);

    public Task<SiloPassAnswer> Forward(SiloPassRequest request, CancellationToken cancellationToken = default) =>
        pass.Run(request, localInput: null, encode: true, cancellationToken);
}
