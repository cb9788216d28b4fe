using System.Collections.Concurrent;
using Headwise.Contracts;
using Headwise.Kernels;

namespace Headwise.Grains.Forward;

/// <summary>
/// A head group active on this silo, as its grain published it: the spec, the kernel-ready weights, its rows of W_O
/// ([g·dh × D], for the silo's partial sum of the output projection) and the version all of them belong to.
/// </summary>
public sealed record LocalHead(AttentionSpec Spec, HeadGroupWeights Weights, float[] OutputRows, Guid Version);

/// <summary>
/// The head grains active on this silo, by grain key. Forward passes and decode steps compute the heads of a silo
/// in-process from what they published here (one message per silo, not one per head: on two cores the twelve Orleans
/// messages of a GPT-2-small decode step cost more than the arithmetic). The weights are immutable once published
/// (a new upload publishes a new object), and each head's K/V cache lives in the silo's
/// <see cref="Decode.SessionCaches"/> whichever path computed it, so both paths see the same cache.
/// </summary>
public sealed class LocalHeads
{
    private readonly ConcurrentDictionary<string, LocalHead> _heads = new(StringComparer.Ordinal);

    public int Count => _heads.Count;

    public void Publish(string key, LocalHead head) => _heads[key] = head;

    /// <summary>Withdraws the head only if it still holds <paramref name="head"/>, so a late deactivation cannot
    /// withdraw what a newer activation published.</summary>
    public void Withdraw(string key, LocalHead head) => _heads.TryRemove(new KeyValuePair<string, LocalHead>(key, head));

    public bool TryGet(string key, out LocalHead head) => _heads.TryGetValue(key, out head!);
}
