namespace Headwise.Kernels;

/// <summary>
/// The keys and values one head group has computed for one sequence, in token order, RoPE already applied to
/// the keys. Rows sit at absolute positions <see cref="FirstPosition"/> … <see cref="Position"/> − 1; a sliding
/// window lets the cache forget rows no later query can see, so its size is bounded by the window, not the sequence.
/// K and V are held in tiles of <see cref="TileTokens"/> tokens, each tile transposed, [dh × 16]: a decode step's scores
/// and weighted sum run 16 cached tokens per vector within a tile (<see cref="CachedAttentionRows"/>), and a tile is
/// one contiguous 4 KB block (dh = 64), so an append touches two blocks, not one row per dimension a capacity apart,
/// and growing copies the tiles as they are. (Version 1, up to commit 5129465, held Kᵀ and Vᵀ as [dh × capacity]: an
/// append wrote 2·dh values each a whole row apart, one page each at a capacity of 1024 or more, and growing re-laid
/// every row; `bench caches` measures both, docs/performance.md.)
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
    /// <summary>Tokens per tile.</summary>
    public const int TileTokens = 16;

    // K and V: [capacity / 16][dh][16] each, from _keyOrigin / _valueOrigin of arrays on the pinned heap: a tile row of 16
    // lanes is one 64-byte line there, so the kernels' vector loads never straddle two (an array starts wherever the heap
    // put it, 8-byte aligned).
    private float[] _keys = [];
    private float[] _values = [];
    private int _keyOrigin, _valueOrigin;
    private int _capacity;        // tokens the buffers have room for, a multiple of 16

    public int HeadDim { get; } = headDim;
    /// <summary>Rows held.</summary>
    public int Count { get; private set; }
    /// <summary>Absolute position of row 0.</summary>
    public int FirstPosition { get; private set; } = firstPosition;
    /// <summary>Tokens seen: the absolute position the next row gets.</summary>
    public int Position => FirstPosition + Count;
    /// <summary>Bytes held by the two buffers.</summary>
    public long Bytes => 2L * HeadDim * _capacity * sizeof(float);

    /// <summary>Rows of room a cache takes to hold <paramref name="rows"/>: whole tiles.</summary>
    public static int RoomFor(int rows) => (rows + TileTokens - 1) / TileTokens * TileTokens;

    /// <summary>Dimension <paramref name="dimension"/> of the key in row <paramref name="row"/>.</summary>
    public float Key(int row, int dimension) => _keys[_keyOrigin + Index(Held(row), dimension)];
    /// <summary>Dimension <paramref name="dimension"/> of the value in row <paramref name="row"/>.</summary>
    public float Value(int row, int dimension) => _values[_valueOrigin + Index(Held(row), dimension)];

    /// <summary>K in tiles, [capacity / 16][dh][16]; lanes past <see cref="Count"/> in the last tile hold zeros or rows
    /// the cache forgot, never anything but finite values it was given.</summary>
    internal Span<float> TiledKeys => _keys.AsSpan(_keyOrigin, HeadDim * _capacity);
    /// <summary>V in tiles, [capacity / 16][dh][16].</summary>
    internal Span<float> TiledValues => _values.AsSpan(_valueOrigin, HeadDim * _capacity);

    /// <summary>The array that holds K's tiles (it changes only when the cache grows).</summary>
    internal float[] KeyBuffer => _keys;
    /// <summary>Values from one tile to the next.</summary>
    internal int TileStride => HeadDim * TileTokens;

    /// <summary>Appends rows for positions Position … Position + tokens − 1.</summary>
    public void Append(
        // keys, values: [tokens, dh]
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int tokens)
    {
        if (keys.Length != tokens * HeadDim || values.Length != tokens * HeadDim)
            throw new ArgumentException($"keys and values need [tokens, dh] = {tokens * HeadDim} values; got {keys.Length} and {values.Length}.");
        if (Count + tokens > _capacity)
        {
            int doubled = Math.Max(Math.Max(TileTokens, 2 * _capacity), reservedTokens);
            if (maxTokens > 0) doubled = Math.Min(doubled, maxTokens - FirstPosition);
            Grow(Math.Max(Count + tokens, doubled));
        }
        var keyTiles = TiledKeys;
        var valueTiles = TiledValues;
        for (int token = 0; token < tokens; token++)
        {
            int at = Index(Count + token, 0);
            for (int d = 0; d < HeadDim; d++)
            {
                keyTiles[at + d * TileTokens] = keys[token * HeadDim + d];
                valueTiles[at + d * TileTokens] = values[token * HeadDim + d];
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
        // Rows move by `drop`, rarely a whole number of tiles: one value at a time (once per window of steps at most).
        var keyTiles = TiledKeys;
        var valueTiles = TiledValues;
        for (int row = 0; row < keep; row++)
        {
            int from = Index(row + drop, 0), to = Index(row, 0);
            for (int d = 0; d < HeadDim; d++)
            {
                keyTiles[to + d * TileTokens] = keyTiles[from + d * TileTokens];
                valueTiles[to + d * TileTokens] = valueTiles[from + d * TileTokens];
            }
        }
        FirstPosition += drop;
        Count = keep;
    }

    private int Held(int row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Count);
        return row;
    }

    // Row `row`, dimension `dimension`: tile row / 16, lane row % 16.
    private int Index(int row, int dimension)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dimension);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(dimension, HeadDim);
        return (row / TileTokens) * TileStride + dimension * TileTokens + row % TileTokens;
    }

    /// <summary>Tiles keep their layout whatever the capacity: growing copies the used tiles as they are.</summary>
    private void Grow(int capacity)
    {
        capacity = RoomFor(capacity);
        // Zeroed: the last tile's lanes past Count are read by the kernels (and weighted by 0), so they must be finite.
        var (keys, keyOrigin) = CacheLine.AllocatePinned(HeadDim * capacity);
        var (values, valueOrigin) = CacheLine.AllocatePinned(HeadDim * capacity);
        int used = RoomFor(Count) * HeadDim;
        TiledKeys[..used].CopyTo(keys.AsSpan(keyOrigin));
        TiledValues[..used].CopyTo(values.AsSpan(valueOrigin));
        (_keys, _keyOrigin, _values, _valueOrigin) = (keys, keyOrigin, values, valueOrigin);
        _capacity = capacity;
    }
}
