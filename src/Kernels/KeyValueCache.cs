namespace Headwise.Kernels;

/// <summary>
/// The keys and values one head group has computed for one sequence, in token order, RoPE already applied to
/// the keys. Rows sit at absolute positions <see cref="FirstPosition"/> … <see cref="Position"/> − 1; a sliding
/// window lets the cache forget rows no later query can see, so its size is bounded by the window, not the sequence.
/// K and V are held transposed, [dh × capacity]: a decode step's scores and weighted sum then run along contiguous
/// spans of every cached token (one per dimension) instead of one short dh-wide call per token.
/// </summary>
/// <param name="headDim">Width of one key and one value row.</param>
/// <param name="firstPosition">Absolute position of the first row appended.</param>
/// <param name="maxTokens">Positions the sequence can reach (its session's max_tokens), or 0 when unbounded: the buffers
/// never grow past room for rows up to that position, so a session's cache costs what its silo reserved for it, not up
/// to twice that.</param>
/// <param name="reservedTokens">Rows the buffers make room for at once, the first time they grow (the rows its silo reserved
/// for it): a cache inside its reservation never re-lays its rows. Growing by doubling instead copies every row again at
/// each doubling, into fresh pages that fault in one by one; a session's first decode step after its prefill did that.</param>
public sealed class KeyValueCache(int headDim, int firstPosition = 0, int maxTokens = 0, int reservedTokens = 0)
{
    private float[] _keys = [];   // Kᵀ: [dh, capacity]
    private float[] _values = []; // Vᵀ: [dh, capacity]
    private int _capacity;        // tokens each row has room for

    public int HeadDim { get; } = headDim;
    /// <summary>Rows held.</summary>
    public int Count { get; private set; }
    /// <summary>Absolute position of row 0.</summary>
    public int FirstPosition { get; private set; } = firstPosition;
    /// <summary>Tokens seen: the absolute position the next row gets.</summary>
    public int Position => FirstPosition + Count;
    /// <summary>Bytes held by the two buffers.</summary>
    public long Bytes => 2L * _keys.Length * sizeof(float);

    /// <summary>Dimension <paramref name="dimension"/> of every cached key: [Count].</summary>
    public ReadOnlySpan<float> KeyRow(int dimension) => Row(_keys, dimension);
    /// <summary>Dimension <paramref name="dimension"/> of every cached value: [Count].</summary>
    public ReadOnlySpan<float> ValueRow(int dimension) => Row(_values, dimension);

    /// <summary>Kᵀ [dh, <see cref="Stride"/>]: row d holds dimension d of every cached key in its first Count values.</summary>
    internal float[] TransposedKeys => _keys;
    /// <summary>Vᵀ [dh, <see cref="Stride"/>].</summary>
    internal float[] TransposedValues => _values;
    /// <summary>Values from one row of <see cref="TransposedKeys"/> or <see cref="TransposedValues"/> to the next.</summary>
    internal int Stride => _capacity;

    /// <summary>Appends rows for positions Position … Position + tokens − 1.</summary>
    public void Append(
        // keys, values: [tokens, dh]
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int tokens)
    {
        if (keys.Length != tokens * HeadDim || values.Length != tokens * HeadDim)
            throw new ArgumentException($"keys and values need [tokens, dh] = {tokens * HeadDim} values; got {keys.Length} and {values.Length}.");
        if (Count + tokens > _capacity)
        {
            int doubled = Math.Max(Math.Max(16, 2 * _capacity), reservedTokens);
            if (maxTokens > 0) doubled = Math.Min(doubled, maxTokens - FirstPosition);
            Grow(Math.Max(Count + tokens, doubled));
        }
        for (int token = 0; token < tokens; token++)
        {
            for (int d = 0; d < HeadDim; d++)
            {
                _keys[d * _capacity + Count + token] = keys[token * HeadDim + d];
                _values[d * _capacity + Count + token] = values[token * HeadDim + d];
            }
        }
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
        for (int d = 0; d < HeadDim; d++)
        {
            _keys.AsSpan(d * _capacity + drop, keep).CopyTo(_keys.AsSpan(d * _capacity));
            _values.AsSpan(d * _capacity + drop, keep).CopyTo(_values.AsSpan(d * _capacity));
        }
        FirstPosition += drop;
        Count = keep;
    }

    private ReadOnlySpan<float> Row(float[] rows, int dimension)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dimension);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(dimension, HeadDim);
        return rows.AsSpan(dimension * _capacity, Count);
    }

    /// <summary>
    /// Every row's stride changes with the capacity, so growing re-lays each row in the new buffers. They are not zeroed:
    /// nothing reads a row past <see cref="Count"/>.
    /// </summary>
    private void Grow(int capacity)
    {
        var keys = GC.AllocateUninitializedArray<float>(HeadDim * capacity);
        var values = GC.AllocateUninitializedArray<float>(HeadDim * capacity);
        for (int d = 0; d < HeadDim; d++)
        {
            _keys.AsSpan(d * _capacity, Count).CopyTo(keys.AsSpan(d * capacity));
            _values.AsSpan(d * _capacity, Count).CopyTo(values.AsSpan(d * capacity));
        }
        _keys = keys;
        _values = values;
        _capacity = capacity;
    }
}
