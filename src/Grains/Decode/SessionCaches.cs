using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;
using Headwise.Kernels;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Decode;

/// <summary>
/// The K/V caches of every decode session on this silo, per head grain and session: one <see cref="KeyValueCache"/>
/// per sequence. The head grains keep their caches here rather than in fields so one silo-wide byte cap can evict
/// the least recently used session's cache; a dropped cache is not an error, the session's coordinator re-fills it.
/// An entry is leased: unused and not renewed by its session's coordinator for <see cref="DecodeSessionOptions.CacheLeaseSeconds"/>
/// (or <see cref="DecodeSessionOptions.IdleSeconds"/> when shorter), it is dropped.
/// A session's caches reserve their bytes at its max_tokens when they start (<see cref="Start"/>); a new session whose
/// reservation does not fit under the cap is refused with ResourceExhausted. Evicting live sessions instead would make
/// every step of a silo over its cap evict a cache that the next step re-fills: steps seconds long, for every session.
/// </summary>
public sealed class SessionCaches
{
    private readonly IOptions<DecodeSessionOptions> options;

    public SessionCaches(IOptions<DecodeSessionOptions> options, SiloIdentity? silo = null)
    {
        this.options = options;
        if (silo is not null) HeadwiseTelemetry.Track(this, silo.Name);
    }

    private sealed class Entry(KeyValueCache[] caches, long reserved)
    {
        public KeyValueCache[] Caches { get; } = caches;
        public long LastUse = Stopwatch.GetTimestamp();
        public long Bytes;
        /// <summary>What the caches will hold at the session's max_tokens (0: no reservation).</summary>
        public long Reserved { get; } = reserved;
        /// <summary>What counts against the cap: the reservation, or more if the caches outgrew it.</summary>
        public long Committed => Math.Max(Bytes, Reserved);
    }

    private readonly Dictionary<(string Head, string Session), Entry> _entries = [];
    private readonly Lock _lock = new();
    private long _bytes;
    private long _committed;
    private long _nextSweep;

    /// <summary>Bytes held by all caches of this silo.</summary>
    public long Bytes { get { lock (_lock) return _bytes; } }

    /// <summary>Bytes reserved or held by all caches of this silo: what a new session's reservation must fit beside.</summary>
    public long Committed { get { lock (_lock) return _committed; } }

    /// <summary>Caches evicted for the byte cap or idleness since the silo started.</summary>
    public long Evictions { get; private set; }

    /// <summary>Lease renewals (<see cref="Renew"/> calls) since the silo started.</summary>
    public long Renewals { get { lock (_lock) return _renewals; } }

    private long _renewals;

    /// <summary>The head's caches for the session, or null when it has none (never filled, evicted, dropped).</summary>
    public KeyValueCache[]? Find(string head, string session)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue((head, session), out var entry)) return null;
            entry.LastUse = Stopwatch.GetTimestamp();
            return entry.Caches;
        }
    }

    /// <summary>Replaces the head's caches for the session with ones built elsewhere, without a reservation.</summary>
    public void Put(string head, string session, KeyValueCache[] caches)
    {
        lock (_lock)
        {
            Remove(head, session);
            _entries[(head, session)] = new Entry(caches, reserved: 0);
        }
        Account(head, session);
    }

    /// <summary>
    /// New, empty caches of the head for the session (one per sequence), starting at the work's position and bounded by
    /// its max_tokens; they replace any the head held. A new session's caches are admitted only if their reservation
    /// fits under the cap beside everything else committed here; otherwise ResourceExhausted, naming the bytes.
    /// </summary>
    public KeyValueCache[] Start(string head, HeadDecodeWork work, int headDim, int window)
    {
        // Reserved caches take their whole reservation at their first append; overcommitted ones grow as they fill.
        int reservedRows = options.Value.OvercommitCaches ? 0 : ReservedRows(work.MaxTokens - work.Position, window);
        var caches = new KeyValueCache[work.Batch];
        for (int s = 0; s < caches.Length; s++) caches[s] = new KeyValueCache(headDim, work.Position, work.MaxTokens, reservedRows);
        long reserved = KeyValueBytes(work.Batch, headDim, reservedRows);
        lock (_lock)
        {
            Remove(head, work.Session);
            if (work.NewSession && reserved > 0)
            {
                long cap = options.Value.CacheBytesPerSilo;
                if (_committed + reserved > cap) SweepExpired(Stopwatch.GetTimestamp(), force: true);
                if (_committed + reserved > cap)
                    throw new HeadwiseException(ErrorCode.ResourceExhausted,
                        $"this silo's decode caches have {_committed} of {cap} bytes reserved (Headwise__Sessions__CacheBytesPerSilo), " +
                        $"and this session's caches at its max_tokens need {reserved} more here; close sessions you no longer need, " +
                        "wait for idle ones to expire, or open the session with a smaller max_tokens.");
            }
            var entry = new Entry(caches, reserved);
            _entries[(head, work.Session)] = entry;
            _committed += entry.Committed;
        }
        return caches;
    }

    /// <summary>
    /// Bytes of K and V for <paramref name="batch"/> sequences of <paramref name="rows"/> more tokens (0 rows: no bound, no
    /// reservation). A sliding window keeps at most about two windows of rows (<see cref="KeyValueCache.TrimToWindow"/>).
    /// </summary>
    public static long Reservation(int batch, int headDim, int rows, int window) =>
        KeyValueBytes(batch, headDim, ReservedRows(rows, window));

    private static long KeyValueBytes(int batch, int headDim, int rows) => 2L * batch * headDim * rows * sizeof(float);

    private static int ReservedRows(int rows, int window) =>
        rows <= 0 ? 0 : KeyValueCache.RoomFor(window > 0 ? Math.Min(rows, 2 * window) : rows);

    /// <summary>Records the size of the head's caches after they grew, then evicts idle entries and, over the cap, the least recently used.</summary>
    public void Account(string head, string session)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue((head, session), out var entry))
            {
                long bytes = 0;
                foreach (var cache in entry.Caches) bytes += cache.Bytes;
                _bytes += bytes - entry.Bytes;
                _committed -= entry.Committed;
                entry.Bytes = bytes;
                _committed += entry.Committed;
                entry.LastUse = Stopwatch.GetTimestamp();
            }
            SweepExpired(Stopwatch.GetTimestamp(), force: false);
            // Only caches without a reservation (or re-filled past the cap after a silo was lost) bring a silo over it.
            while (_committed > options.Value.CacheBytesPerSilo && _entries.Count > 0)
            {
                var oldest = _entries.MinBy(e => e.Value.LastUse).Key;
                Remove(oldest.Head, oldest.Session);
                Evictions++;
            }
        }
    }

    /// <summary>Forgets the head's caches for the session.</summary>
    public void Drop(string head, string session)
    {
        lock (_lock) Remove(head, session);
    }

    /// <summary>Renews the lease of every head's caches for the session: its coordinator still serves it.</summary>
    public void Renew(string session)
    {
        lock (_lock)
        {
            long now = Stopwatch.GetTimestamp();
            foreach (var (key, entry) in _entries)
                if (key.Session == session) entry.LastUse = now;
            _renewals++;
        }
    }

    /// <summary>Forgets every head's caches for the session (it was closed or expired).</summary>
    public void DropSession(string session)
    {
        lock (_lock)
        {
            foreach (var key in _entries.Keys.Where(k => k.Session == session).ToList())
                Remove(key.Head, key.Session);
        }
    }

    /// <summary>Head caches this silo holds for the session.</summary>
    public int CountOf(string session)
    {
        lock (_lock) return _entries.Keys.Count(k => k.Session == session);
    }

    // Every head of every step accounts here: the sweep of expired leases walks all entries, so it runs at most once a
    // second (four times per lease when that is shorter) rather than on each call, unless a reservation waits on it.
    private void SweepExpired(long now, bool force)
    {
        double leaseSeconds = Math.Min(options.Value.IdleSeconds, options.Value.CacheLeaseSeconds);
        if (!force && now < _nextSweep) return;
        _nextSweep = now + (long)(Stopwatch.Frequency * Math.Min(1.0, leaseSeconds / 4.0));
        var idle = TimeSpan.FromSeconds(leaseSeconds);
        foreach (var key in _entries.Where(e => Stopwatch.GetElapsedTime(e.Value.LastUse, now) > idle).Select(e => e.Key).ToList())
        {
            Remove(key.Head, key.Session);
            Evictions++;
        }
    }

    private void Remove(string head, string session)
    {
        if (!_entries.Remove((head, session), out var entry)) return;
        _bytes -= entry.Bytes;
        _committed -= entry.Committed;
    }
}
