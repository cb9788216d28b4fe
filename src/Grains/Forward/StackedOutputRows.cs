using System.Collections.Concurrent;

namespace Headwise.Grains.Forward;

/// <summary>
/// The W_O rows of the head groups a silo computes for a layer, stacked into one [k·g·dh × D] operand for the silo's
/// partial-sum GEMM, kept while the same heads (the same published <see cref="LocalHead"/> objects, so the same weights
/// version) answer. Stacking afresh for every pass copied 2.4 MB per GPT-2-small decode step, more than the step's
/// arithmetic. One entry per layer and group set on this silo; a re-upload or a moved head replaces it.
/// </summary>
public sealed class StackedOutputRows
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    private sealed record Entry(LocalHead[] Heads, float[] Rows);

    /// <param name="heads">The groups' published heads, in the order their Z is concatenated.</param>
    public float[] Get(string layer, IReadOnlyList<(int Group, LocalHead Head)> heads)
    {
        string key = layer + ":" + string.Join(',', heads.Select(h => h.Group));
        if (_entries.TryGetValue(key, out var entry) && Same(entry.Heads, heads)) return entry.Rows;
        int block = heads[0].Head.OutputRows.Length;
        var rows = new float[heads.Count * block];
        for (int i = 0; i < heads.Count; i++) heads[i].Head.OutputRows.CopyTo(rows.AsSpan(i * block));
        _entries[key] = new Entry(heads.Select(h => h.Head).ToArray(), rows);
        return rows;
    }

    private static bool Same(LocalHead[] cached, IReadOnlyList<(int Group, LocalHead Head)> heads)
    {
        if (cached.Length != heads.Count) return false;
        for (int i = 0; i < cached.Length; i++)
            if (!ReferenceEquals(cached[i], heads[i].Head)) return false;
        return true;
    }
}
