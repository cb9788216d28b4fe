namespace Headwise.Grains.Decode;

/// <summary>Limits of decode sessions (configuration section Headwise:Sessions, e.g. Headwise__Sessions__IdleSeconds).</summary>
public sealed class DecodeSessionOptions
{
    /// <summary>max_tokens of a session that asks for 0.</summary>
    public int DefaultMaxTokens { get; set; } = 2048;

    /// <summary>The largest max_tokens a session may ask for.</summary>
    public int MaxTokens { get; set; } = 32768;

    /// <summary>A session unused this long is closed and its caches freed.</summary>
    public int IdleSeconds { get; set; } = 600;

    /// <summary>
    /// Bytes of K/V caches all head grains of one silo may hold or have reserved together (see <see cref="OvercommitCaches"/>);
    /// past it the least recently used session's cache on that silo is dropped (the session's coordinator re-fills it
    /// from the inputs on its next step).
    /// </summary>
    public long CacheBytesPerSilo { get; set; } = 2L << 30;

    /// <summary>
    /// False (the default): a session's first step reserves its caches at max_tokens on every silo of its heads, and a
    /// silo without room refuses it with ResourceExhausted, so admitted sessions never evict one another. True: every
    /// session is admitted and a silo over <see cref="CacheBytesPerSilo"/> evicts the least recently used cache, which
    /// its session re-fills on its next step (more sessions than fit at once, each step then slower; for many mostly
    /// idle sessions with a large max_tokens).
    /// </summary>
    public bool OvercommitCaches { get; set; }

    /// <summary>
    /// Bytes of session inputs the coordinators of one silo may hold together; a step that would pass it fails with
    /// ResourceExhausted.
    /// </summary>
    public long InputBytesPerSilo { get; set; } = 2L << 30;

    /// <summary>
    /// A head's K/V cache of a session lives this long past its last use unless the session's coordinator renews it
    /// (it does while the session is open): the caches of a session nobody coordinates any more (its silo died and its
    /// caller left) are freed after this, and go first when a silo's caches are over <see cref="CacheBytesPerSilo"/>.
    /// </summary>
    public int CacheLeaseSeconds { get; set; } = 60;

    /// <summary>
    /// Bytes of one stored segment of a session's inputs (all its sequences). A step inside a segment stores only its own
    /// rows (<see cref="SessionInputs"/>); the segment is written whole once it is complete, or after
    /// <see cref="SessionInputs.TailSlots"/> steps in it. 64 KiB keeps each segment (and the storage's copy of it) off
    /// the large-object heap and bounds a rebuild's reads; a rebuild reads the segments in parallel.
    /// </summary>
    public long InputSegmentBytes { get; set; } = 64L << 10;

    /// <summary>Most sessions open at once whose coordinator is on one silo; one more is refused with ResourceExhausted
    /// (Headwise__Sessions__MaxOpenPerSilo), so that a flood of OpenSession calls cannot grow the registry without bound.</summary>
    public int MaxOpenPerSilo { get; set; } = 4096;
}
