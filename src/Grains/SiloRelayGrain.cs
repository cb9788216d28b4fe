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
/// passes of every layer. A decode step of a session reaches the
/// silo's heads the same way, one message per silo; the heads active here are computed in-process (<see cref="LocalHeads"/>).
/// </summary>
[SiloBoundPlacement, Reentrant]
public sealed class SiloRelayGrain(
    CancelledForwards cancelled,
    LocalHeads localHeads,
    IHeadKernel kernel,
    SessionCaches caches,
    SiloPass pass,
    SiloIdentity silo) : Grain, ISiloRelayGrain
{
    public async Task<HeadDecodeOutcome[]> Decode(HeadDecodeWork work, string[] headKeys)
    {
        var outcomes = new HeadDecodeOutcome[headKeys.Length];
        var local = new List<(string Key, LocalHead Head)>(headKeys.Length);
        var localIndex = new List<int>(headKeys.Length);
        var calls = new List<Task>();
        for (int i = 0; i < headKeys.Length; i++)
        {
            if (localHeads.TryGet(headKeys[i], out var head))
            {
                local.Add((headKeys[i], head));
                localIndex.Add(i);
            }
            else
            {
                calls.Add(Call(i)); // moved away, or not active yet: its grain answers from wherever it is
            }
        }
        var computed = HeadDecoder.DecodeLocal(local, work, kernel, silo.Name, caches);
        for (int i = 0; i < computed.Length; i++) outcomes[localIndex[i]] = computed[i];
        await Task.WhenAll(calls);
        return outcomes;

        async Task Call(int i) => outcomes[i] = await GrainFactory.GetGrain<IHeadGrain>(headKeys[i]).Decode(work);
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
