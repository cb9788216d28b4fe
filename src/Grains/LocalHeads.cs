using System.Collections.Concurrent;
using Headwise.Contracts;
using Headwise.Kernels;

namespace Headwise.Grains;

/// <summary>A head group active on this silo, as its grain published it: the spec, the kernel-ready weights and their version.</summary>
public sealed record LocalHead(AttentionSpec Spec, HeadGroupWeights Weights, Guid Version);

/// <summary>
/// The head grains active on this silo, by grain key. A decode step moves one token's X (3 KB) to each head and
/// back; on two cores the twelve Orleans messages of a GPT-2-small step cost more than the arithmetic, so a
/// session's coordinator computes the step of the heads active on its own silo in-process from what they
/// published here, and sends messages only to heads on other silos. The weights are immutable once published
/// (a new upload publishes a new object), and each head's K/V cache lives in the silo's
/// <see cref="SessionCaches"/> whichever path computed it, so both paths see the same cache.
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
