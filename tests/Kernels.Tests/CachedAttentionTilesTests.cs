using Headwise.Kernels;
using Xunit;

namespace Headwise.Kernels.Tests;

/// <summary>
/// The decode passes over a tiled cache (<see cref="CachedAttentionRows"/>) at every vector width, the scalar one
/// included, against float64 sums; and keys outside a query's visible range, in the first and last tile the passes
/// read whole, never reach its answer.
/// </summary>
public sealed unsafe class CachedAttentionTilesTests
{
    [Theory]
    [InlineData(0, 24, 37)]
    [InlineData(128, 24, 37)]
    [InlineData(256, 24, 37)]
    [InlineData(512, 24, 37)]
    [InlineData(0, 13, 16)]  // a head width with dimensions past the 8-wide blocks
    [InlineData(128, 13, 5)]
    [InlineData(256, 13, 33)]
    [InlineData(512, 13, 70)]
    public void Scores_and_weighted_sums_match_float64_at_every_width(int bits, int headDim, int count)
    {
        var width = (VectorWidth)bits;
        var random = new Random(headDim * 100 + count + bits);
        var cache = new KeyValueCache(headDim);
        var keys = RandomTensors.Normal(random, count * headDim);
        var values = RandomTensors.Normal(random, count * headDim);
        cache.Append(keys, values, count);
        var query = RandomTensors.Normal(random, headDim);
        int tiles = KeyValueCache.RoomFor(count) / KeyValueCache.TileTokens;
        const float scale = 0.3f;

        var scores = new float[tiles * KeyValueCache.TileTokens];
        var weights = new float[scores.Length];
        for (int k = 0; k < count; k++) weights[k] = random.NextSingle();
        var z = new float[headDim];
        const float inverse = 0.7f;
        fixed (float* q = query, keyTiles = cache.TiledKeys, valueTiles = cache.TiledValues, s = scores, p = weights, output = z)
        {
            CachedAttentionRows.Scores(width, q, scale, keyTiles, headDim, tiles, s);
            CachedAttentionRows.WeightedSum(width, p, tiles, valueTiles, headDim, inverse, output);
        }

        for (int k = 0; k < count; k++)
        {
            double expected = 0;
            for (int d = 0; d < headDim; d++) expected += (double)query[d] * scale * keys[k * headDim + d];
            Assert.True(Math.Abs(scores[k] - expected) <= 1e-5 * (1 + Math.Abs(expected)), $"{width}: score {k} is {scores[k]}, expected {expected}");
        }
        for (int d = 0; d < headDim; d++)
        {
            double expected = 0;
            for (int k = 0; k < count; k++) expected += (double)weights[k] * values[k * headDim + d];
            expected *= inverse;
            Assert.True(Math.Abs(z[d] - expected) <= 1e-5 * (1 + Math.Abs(expected)), $"{width}: z[{d}] is {z[d]}, expected {expected}");
        }
    }

    [Theory]
    [InlineData(40, 7)]   // the window starts inside the third tile
    [InlineData(21, 0)]   // no window: the last tile is part full
    public void Keys_outside_the_visible_range_never_reach_the_answer(int count, int window)
    {
        const int headDim = 16;
        var random = new Random(count + window);
        var cache = new KeyValueCache(headDim);
        cache.Append(RandomTensors.Normal(random, count * headDim), RandomTensors.Normal(random, count * headDim), count);
        var shape = new HeadGroupShape(headDim, headDim, 1);
        var options = new AttentionOptions(0.25f, Causal: true, window);
        var query = RandomTensors.Normal(random, headDim);
        int position = count - 1;
        var clean = new float[headDim];
        IncrementalAttention.AttendCached(query, 1, position, cache, shape, options, clean);

        // Every key lane of the tiles the pass reads that the query may not see: NaN.
        int start = window > 0 ? Math.Max(0, position - window + 1) : 0;
        int tiles = KeyValueCache.RoomFor(count) / KeyValueCache.TileTokens;
        for (int row = start / KeyValueCache.TileTokens * KeyValueCache.TileTokens; row < tiles * KeyValueCache.TileTokens; row++)
        {
            if (row >= start && row < count) continue;
            for (int d = 0; d < headDim; d++)
                cache.TiledKeys[(row / 16) * cache.TileStride + d * 16 + row % 16] = float.NaN;
        }
        var poisoned = new float[headDim];
        IncrementalAttention.AttendCached(query, 1, position, cache, shape, options, poisoned);

        Assert.All(poisoned, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(clean, poisoned);
    }
}
