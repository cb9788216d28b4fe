namespace Headwise.Kernels;

/// <summary>
/// The keys and values one head group has computed for one sequence, in token order, RoPE already applied to
/// the keys. Rows sit at absolute positions <see cref="FirstPosition"/> … <see cref="Position"/> − 1; a sliding
/// window lets the cache forget rows no later query can see, so its size is bounded by the window, not the sequence.
/// </summary>
public sealed class KeyValueCache(int headDim, int firstPosition = 0)
{
    private float[] _keys = [];   // [capacity, dh]
    private float[] _values = []; // [capacity, dh]

    public int HeadDim { get; } = headDim;
    /// <summary>Rows held.</summary>
    public int Count { get; private set; }
    /// <summary>Absolute position of row 0.</summary>
    public int FirstPosition { get; private set; } = firstPosition;
    /// <summary>Tokens seen: the absolute position the next row gets.</summary>
    public int Position => FirstPosition + Count;
    /// <summary>Bytes held by the two buffers.</summary>
    public long Bytes => 2L * _keys.Length * sizeof(float);

    /// <summary>K rows: [Count, dh].</summary>
    public ReadOnlySpan<float> Keys => _keys.AsSpan(0, Count * HeadDim);
    /// <summary>V rows: [Count, dh].</summary>
    public ReadOnlySpan<float> Values => _values.AsSpan(0, Count * HeadDim);

    /// <summary>Appends rows for positions Position … Position + tokens − 1.</summary>
    public void Append(
        // keys, values: [tokens, dh]
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int tokens)
    {
        int needed = (Count + tokens) * HeadDim;
        if (needed > _keys.Length)
        {
            int capacity = Math.Max(needed, Math.Max(16 * HeadDim, _keys.Length * 2));
            Array.Resize(ref _keys, capacity);
            Array.Resize(ref _values, capacity);
        }
        keys.CopyTo(_keys.AsSpan(Count * HeadDim));
        values.CopyTo(_values.AsSpan(Count * HeadDim));
        Count += tokens;
    }

    /// <summary>
    /// Forgets rows no query at position ≥ <see cref="Position"/> sees under a window of <paramref name="window"/>
    /// (it sees keys at positions &gt; query − window). Compacts only once the dead prefix reaches the window, so the
    /// copy is amortised and the cache holds at most about 2·window rows plus one chunk.
    /// </summary>
    public void TrimToWindow(int window)
    {
        if (window <= 0) return;
        int keep = Math.Max(0, window - 1);
        int drop = Count - keep;
        if (drop < Math.Max(window, 16)) return;
        _keys.AsSpan(drop * HeadDim, keep * HeadDim).CopyTo(_keys);
        _values.AsSpan(drop * HeadDim, keep * HeadDim).CopyTo(_values);
        FirstPosition += drop;
        Count = keep;
    }
}
