using Headwise.Kernels;
using Xunit;

namespace Headwise.Kernels.Tests;

/// <summary>
/// A cache told its sequence's last position never holds room past that position's tile (16 tokens): what a silo
/// reserves for a session at its max_tokens is what the cache costs, while a cache without a bound still grows by doubling.
/// </summary>
public sealed class KeyValueCacheTests
{
    private const int HeadDim = 8;

    [Theory]
    [InlineData(0, 100, 1)]
    [InlineData(0, 100, 7)]
    [InlineData(40, 100, 3)]
    [InlineData(0, 1000, 1)]
    public void A_bounded_cache_never_holds_room_past_its_last_position(int first, int maxTokens, int chunk)
    {
        var random = new Random(first * 31 + maxTokens + chunk);
        var cache = new KeyValueCache(HeadDim, first, maxTokens);
        var keys = new List<float>();
        while (cache.Position < maxTokens)
        {
            int tokens = Math.Min(chunk, maxTokens - cache.Position);
            var k = Enumerable.Range(0, tokens * HeadDim).Select(_ => random.NextSingle()).ToArray();
            var v = Enumerable.Range(0, tokens * HeadDim).Select(_ => random.NextSingle()).ToArray();
            cache.Append(k, v, tokens);
            keys.AddRange(k);
            Assert.True(cache.Bytes <= 2L * HeadDim * KeyValueCache.RoomFor(maxTokens - first) * sizeof(float), $"{cache.Bytes} bytes at position {cache.Position}");
        }
        Assert.Equal(2L * HeadDim * KeyValueCache.RoomFor(maxTokens - first) * sizeof(float), cache.Bytes);
        // Every row is where it was put, whatever the growth steps were.
        for (int d = 0; d < HeadDim; d++)
        {
            for (int t = 0; t < cache.Count; t++) Assert.Equal(keys[t * HeadDim + d], cache.Key(t, d));
        }
    }

    [Fact]
    public void An_unbounded_cache_grows_by_doubling()
    {
        var cache = new KeyValueCache(HeadDim);
        var row = new float[HeadDim];
        for (int t = 0; t < 100; t++) cache.Append(row, row, 1);
        Assert.Equal(2L * HeadDim * 128 * sizeof(float), cache.Bytes);
    }

    [Fact]
    public void A_bounded_windowed_cache_stays_within_its_bound_as_it_slides()
    {
        var cache = new KeyValueCache(HeadDim, 0, maxTokens: 300);
        var row = new float[HeadDim];
        for (int t = 0; t < 300; t++)
        {
            cache.Append(row, row, 1);
            cache.TrimToWindow(32);
            Assert.True(cache.Bytes <= 2L * HeadDim * 300 * sizeof(float));
        }
        Assert.Equal(300, cache.Position);
        // The window keeps the cache small: it never needed more than a few windows of room.
        Assert.True(cache.Bytes <= 2L * HeadDim * 128 * sizeof(float), $"{cache.Bytes} bytes");
    }

    [Theory]
    [InlineData(128, 1)]
    [InlineData(128, 5)]
    [InlineData(37, 3)]
    public void A_reserved_cache_takes_its_reservation_at_its_first_append_and_never_relays_its_rows(int reserved, int chunk)
    {
        var random = new Random(reserved * 7 + chunk);
        var cache = new KeyValueCache(HeadDim, firstPosition: 10, maxTokens: 10 + reserved, reservedTokens: reserved);
        var keys = new List<float>();
        var values = new List<float>();
        float[]? buffer = null;
        while (cache.Position < 10 + reserved)
        {
            int tokens = Math.Min(chunk, 10 + reserved - cache.Position);
            var k = Enumerable.Range(0, tokens * HeadDim).Select(_ => random.NextSingle()).ToArray();
            var v = Enumerable.Range(0, tokens * HeadDim).Select(_ => random.NextSingle()).ToArray();
            cache.Append(k, v, tokens);
            keys.AddRange(k);
            values.AddRange(v);
            Assert.Equal(2L * HeadDim * KeyValueCache.RoomFor(reserved) * sizeof(float), cache.Bytes);
            buffer ??= cache.KeyBuffer;
            Assert.Same(buffer, cache.KeyBuffer);
        }
        // Every row read back is the one that was appended.
        for (int d = 0; d < HeadDim; d++)
            for (int t = 0; t < cache.Count; t++)
            {
                Assert.Equal(keys[t * HeadDim + d], cache.Key(t, d));
                Assert.Equal(values[t * HeadDim + d], cache.Value(t, d));
            }
    }

    [Fact]
    public unsafe void Tiles_start_on_a_cache_line_however_often_the_cache_grows()
    {
        // A tile row of 16 floats is one 64-byte line only if the tiles start on one: the decode kernels' vector loads
        // then never straddle two lines. Many caches, since one array may land aligned by chance.
        var random = new Random(5);
        for (int c = 0; c < 32; c++)
        {
            var cache = new KeyValueCache(64);
            for (int step = 0; step < 40; step++)
            {
                int tokens = 1 + random.Next(20);
                var k = Enumerable.Range(0, tokens * 64).Select(_ => random.NextSingle()).ToArray();
                cache.Append(k, k, tokens);
                fixed (float* keys = cache.TiledKeys, values = cache.TiledValues)
                {
                    Assert.Equal(0, (nint)keys % 64);
                    Assert.Equal(0, (nint)values % 64);
                }
                Assert.Equal(k[^1], cache.Key(cache.Count - 1, 63));
                Assert.Equal(k[^1], cache.Value(cache.Count - 1, 63));
            }
        }
    }
}
