using System.Diagnostics;
using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>What one head group sent back, with its Z widened to float32 and the bytes that crossed the network.</summary>
public sealed record GroupResult(HeadOutcome Outcome, double CallMs, long InputBytes, long OutputBytes);

/// <summary>
/// The scatter step of a forward pass: heads on the coordinator's silo are called directly with the shared
/// buffer; the heads of every other silo through that silo's relay, so X crosses the network once per silo
/// (or once per head in <see cref="ScatterMode.PerHead"/>, kept to measure what the relay saves).
/// </summary>
public sealed class HeadScatter(IGrainFactory grains, string localSilo, ScatterMode mode)
{
    /// <param name="work">The float32 work every head receives.</param>
    /// <param name="wire">How X and Z cross between silos.</param>
    /// <param name="headKeys">Head grain keys, by group.</param>
    /// <param name="locations">The silo of each group as last seen; a stale entry only costs locality, never correctness.</param>
    /// <param name="cancellationToken">The request's deadline: heads and relays that have not started skip their work.</param>
    public async Task<GroupResult[]> Run(HeadWork work, WireFormat wire, IReadOnlyList<string> headKeys, IReadOnlyList<string> locations,
        CancellationToken cancellationToken = default)
    {
        var results = new GroupResult[headKeys.Count];
        var calls = new List<Task>();
        var remote = new Dictionary<string, List<int>>();
        for (int g = 0; g < headKeys.Count; g++)
        {
            if (locations[g] == localSilo || mode == ScatterMode.PerHead)
                calls.Add(CallHead(g, work, locations[g] != localSilo));
            else if (remote.TryGetValue(locations[g], out var groups))
                groups.Add(g);
            else
                remote[locations[g]] = [g];
        }

        if (remote.Count > 0)
        {
            // Encoded once for all relays: the same immutable buffer goes to every silo.
            var wireWork = wire == WireFormat.Bf16
                ? work with { Input = Bf16.Encode(FloatBytes.AsFloats(work.Input)), Wire = WireFormat.Bf16 }
                : work;
            calls.AddRange(remote.Select(silo => CallRelay(silo.Key, silo.Value, wireWork)));
        }
        await Task.WhenAll(calls);
        return results;

        async Task CallHead(int group, HeadWork headWork, bool crossesNetwork)
        {
            long started = Stopwatch.GetTimestamp();
            var outcome = await grains.GetGrain<IHeadGrain>(headKeys[group]).Attend(headWork, cancellationToken);
            double callMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            results[group] = new GroupResult(outcome, callMs,
                crossesNetwork ? headWork.Input.LongLength : 0,
                crossesNetwork ? ReturnedBytes(outcome) : 0);
        }

        async Task CallRelay(string silo, List<int> groups, HeadWork wireWork)
        {
            long started = Stopwatch.GetTimestamp();
            var relayed = await grains.GetGrain<ISiloRelayGrain>(GrainKeys.Relay(silo))
                .Attend(wireWork, groups.Select(g => headKeys[g]).ToArray(), cancellationToken);
            double callMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            for (int i = 0; i < groups.Count; i++)
            {
                var outcome = relayed.Heads[i];
                long returned = ReturnedBytes(outcome);
                if (outcome.Wire == WireFormat.Bf16)
                    outcome = outcome with { Output = Bf16.DecodeToFloatBytes(outcome.Output), Wire = WireFormat.F32 };
                results[groups[i]] = new GroupResult(outcome, callMs, wireWork.Input.LongLength, returned);
            }
        }
    }

    private static long ReturnedBytes(HeadOutcome outcome) => outcome.Output.LongLength + (outcome.Attention?.LongLength ?? 0);
}
