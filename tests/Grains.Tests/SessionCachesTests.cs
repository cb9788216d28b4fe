using Headwise.Grains.Decode;
using Headwise.Kernels;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Tests;

/// <summary>The per-silo K/V cache store: byte accounting and least-recently-used eviction under its cap.</summary>
public sealed class SessionCachesTests
{
    private static KeyValueCache[] Filled(int rows)
    {
        var cache = new KeyValueCache(headDim: 4);
        cache.Append(new float[rows * 4], new float[rows * 4], rows);
        return [cache];
    }

    [Fact]
    public void Over_the_cap_the_least_recently_used_session_goes_first()
    {
        long oneEntry = Filled(16)[0].Bytes;
        var caches = new SessionCaches(Options.Create(new DecodeSessionOptions { CacheBytesPerSilo = 2 * oneEntry }));
        caches.Put("m/0/0", "a", Filled(16));
        caches.Put("m/0/0", "b", Filled(16));
        Assert.Equal(2 * oneEntry, caches.Bytes);

        Assert.NotNull(caches.Find("m/0/0", "a")); // a is now more recent than b
        caches.Put("m/0/1", "c", Filled(16));

        Assert.Null(caches.Find("m/0/0", "b"));
        Assert.NotNull(caches.Find("m/0/0", "a"));
        Assert.NotNull(caches.Find("m/0/1", "c"));
        Assert.Equal(2 * oneEntry, caches.Bytes);
        Assert.Equal(1, caches.Evictions);

        caches.Drop("m/0/0", "a");
        Assert.Null(caches.Find("m/0/0", "a"));
        Assert.Equal(oneEntry, caches.Bytes);
    }

    [Fact]
    public async Task A_cache_whose_lease_was_not_renewed_expires_and_a_renewed_one_stays()
    {
        var caches = new SessionCaches(Options.Create(new DecodeSessionOptions { CacheLeaseSeconds = 2 }));
        caches.Put("h", "orphan", Filled(4));
        caches.Put("h", "open", Filled(4));
        for (int i = 0; i < 4; i++)
        {
            await Task.Delay(800);
            caches.Renew("open");
        }
        caches.Put("h", "other", Filled(4)); // any head's step sweeps the expired leases
        Assert.Null(caches.Find("h", "orphan"));
        Assert.NotNull(caches.Find("h", "open"));
        Assert.Equal(2 * Filled(4)[0].Bytes, caches.Bytes);
    }
}
