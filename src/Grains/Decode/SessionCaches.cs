using System.Diagnostics;
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
/// </summary>
public sealed class SessionCaches
{
    private readonly IOptions<DecodeSessionOptions> options;

    public SessionCaches(IOptions<DecodeSessionOptions> options, SiloIdentity? silo = null)
    {
        this.options = options;
        if (silo is not null) HeadwiseTelemetry.Track(this, silo.Name);
    }

    private sealed class Entry(KeyValueCache[] caches)
    {
        public KeyValueCache[] Caches { get; } = caches;
        public long LastUse = Stopwatch.GetTimestamp();
        public long Bytes;
    }

    private readonly Dictionary<(string Head, string Session), Entry> _entries = [];
    private readonly Lock _lock = new();
    private long _bytes;
    private long _nextSweep;

    /// <summary>Bytes held by all caches of this silo.</summary>
    public long Bytes { get { lock (_lock) return _bytes; } }

    /// <summary>Caches evicted for the byte cap or idleness since the silo started.</summary>
    public long Evictions { get; private set; }

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

    /// <summary>Replaces the head's caches for the session.</summary>
    public void Put(string head, string session, KeyValueCache[] caches)
    {
        lock (_lock)
        {
            Remove(head, session);
            _entries[(head, session)] = new Entry(caches);
        }
        Account(head, session);
    }

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
                entry.Bytes = bytes;
                entry.LastUse = Stopwatch.GetTimestamp();
            }
            // Every head of every step comes here: the sweep of expired leases walks all entries, so it runs at most
            // once a second (four times per lease when that is shorter) rather than on each call, and before the cap
            // evicts anything live.
            double leaseSeconds = Math.Min(options.Value.IdleSeconds, options.Value.CacheLeaseSeconds);
            var idle = TimeSpan.FromSeconds(leaseSeconds);
            long now = Stopwatch.GetTimestamp();
            if (now >= _nextSweep)
            {
                _nextSweep = now + (long)(Stopwatch.Frequency * Math.Min(1.0, leaseSeconds / 4.0));
                foreach (var key in _entries.Where(e => Stopwatch.GetElapsedTime(e.Value.LastUse, now) > idle).Select(e => e.Key).ToList())
                {
                    Remove(key.Head, key.Session);
                    Evictions++;
                }
            }
            while (_bytes > options.Value.CacheBytesPerSilo && _entries.Count > 0)
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

    private void Remove(string head, string session)
    {
        if (_entries.Remove((head, session), out var entry)) _bytes -= entry.Bytes;
    }
}
