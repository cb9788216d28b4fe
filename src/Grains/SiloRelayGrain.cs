using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Placement;
using Headwise.Kernels;
using Orleans.Concurrency;

namespace Headwise.Grains;

/// <summary>
/// The per-silo fan-out: the coordinator (<see cref="LayerGrain"/>) sends X once to the relay of each remote
/// silo, and the relay calls the head grains on its silo with that one buffer ([Immutable], so no copy).
/// It holds no state, so it interleaves the forward passes of every layer. A decode step of a session reaches the
/// silo's heads the same way, one message per silo; the heads active here are computed in-process (<see cref="LocalHeads"/>).
/// </summary>
[SiloBoundPlacement, Reentrant]
public sealed class SiloRelayGrain(
    CancelledForwards cancelled,
    LocalHeads localHeads,
    IHeadKernel kernel,
    SessionCaches caches,
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

    public async Task<RelayOutcome> Attend(HeadWork work, string[] headKeys, CancellationToken cancellationToken = default)
    {
        // Heads compute in float32: widen X once for all of this silo's heads.
        var local = work.Wire == WireFormat.Bf16 ? work with { Input = Bf16.DecodeToFloatBytes(work.Input), Wire = WireFormat.F32 } : work;
        var results = await Task.WhenAll(headKeys.Select(async key =>
        {
            long started = Stopwatch.GetTimestamp();
            var outcome = await GrainFactory.GetGrain<IHeadGrain>(key).Attend(local, cancellationToken);
            return (Outcome: outcome, CallMs: Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }));
        return new RelayOutcome
        {
            Heads = results.Select(r => work.Wire == WireFormat.Bf16
                ? r.Outcome with { Output = Bf16.Encode(FloatBytes.AsFloats(r.Outcome.Output)), Wire = WireFormat.Bf16 }
                : r.Outcome).ToArray(),
            CallMs = results.Select(r => r.CallMs).ToArray(),
        };
    }
}
