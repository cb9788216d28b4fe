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
/// A head switched to new weights keeps its previous ones here until it retires them: passes planned before the switch
/// finish on the weights they were planned with instead of failing.
/// </summary>
public sealed class LocalHeads
{
    private sealed record Published(LocalHead Current, LocalHead? Previous);

    private readonly ConcurrentDictionary<string, Published> _heads = new(StringComparer.Ordinal);

    public int Count => _heads.Count;

    /// <summary>Publishes <paramref name="head"/>; <paramref name="keepPrevious"/> keeps the weights it replaces
    /// for passes planned with them.</summary>
    public void Publish(string key, LocalHead head, bool keepPrevious = false) =>
        _heads.AddOrUpdate(key, new Published(head, null),
            (_, old) => new Published(head, keepPrevious && old.Current.Version != head.Version ? old.Current : null));

    /// <summary>Withdraws the head only if it still holds <paramref name="head"/>, so a late deactivation cannot
    /// withdraw what a newer activation published.</summary>
    public void Withdraw(string key, LocalHead head)
    {
        while (_heads.TryGetValue(key, out var published) && ReferenceEquals(published.Current, head))
            if (_heads.TryRemove(new KeyValuePair<string, Published>(key, published))) return;
    }

    /// <summary>Drops the previous weights of the head if they are <paramref name="version"/>.</summary>
    public void Retire(string key, Guid version)
    {
        while (_heads.TryGetValue(key, out var published) && published.Previous?.Version == version)
            if (_heads.TryUpdate(key, published with { Previous = null }, published)) return;
    }

    /// <summary>The weights the head serves now.</summary>
    public bool TryGet(string key, out LocalHead head)
    {
        bool found = _heads.TryGetValue(key, out var published);
        head = published?.Current!;
        return found;
    }

    /// <summary>The head's weights of <paramref name="version"/> if it still holds them, else the ones it serves now.</summary>
    public bool TryGet(string key, Guid version, out LocalHead head)
    {
        if (!_heads.TryGetValue(key, out var published))
        {
            head = null!;
            return false;
        }
        head = published.Previous is { } previous && previous.Version == version && published.Current.Version != version
            ? previous
            : published.Current;
        return true;
    }
}
