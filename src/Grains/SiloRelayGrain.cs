using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Placement;
using Orleans.Concurrency;

namespace Headwise.Grains;

/// <summary>
/// The per-silo fan-out: the coordinator (<see cref="LayerGrain"/>) sends X once to the relay of each remote
/// silo, and the relay calls the head grains on its silo with that one buffer ([Immutable], so no copy).
/// It holds no state, so it interleaves the forward passes of every layer.
/// </summary>
[SiloBoundPlacement, Reentrant]
public sealed class SiloRelayGrain(CancelledForwards cancelled) : Grain, ISiloRelayGrain
{
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
