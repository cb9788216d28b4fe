using Headwise.Grains.Placement;

namespace Headwise.Grains.Tests;

/// <summary>The placement rule on its own: even over equal silos, proportional to advertised speed.</summary>
public sealed class HeadAllocationTests
{
    [Theory]
    [InlineData(12, 3, new[] { 4, 4, 4 })]
    [InlineData(25, 4, new[] { 7, 6, 6, 6 })]
    [InlineData(12, 5, new[] { 3, 3, 2, 2, 2 })]
    [InlineData(1, 3, new[] { 1, 0, 0 })]
    [InlineData(64, 7, new[] { 10, 9, 9, 9, 9, 9, 9 })]
    public void Equal_silos_get_equal_shares(int groups, int silos, int[] expected)
    {
        var weights = HeadAllocation.Weights(Enumerable.Repeat<double?>(100, silos).ToArray());
        Assert.Equal(expected, Counts(groups, weights));
    }

    [Fact]
    public void A_silo_twice_as_fast_gets_twice_the_heads()
    {
        var weights = HeadAllocation.Weights([200, 100, 100]);
        Assert.Equal([6, 3, 3], Counts(12, weights));
    }

    [Fact]
    public void Speeds_within_measurement_noise_count_as_equal()
    {
        Assert.Equal([2, 2, 2], HeadAllocation.Weights([100, 118, 95]));
        Assert.Equal([2, 2, 2], HeadAllocation.Weights([null, 100, null]));
        Assert.Equal([3, 2], HeadAllocation.Weights([150, 100]));
    }

    [Fact]
    public void Consecutive_slots_alternate_silos_so_any_prefix_is_spread()
    {
        var weights = HeadAllocation.Weights([100, 100, 100]);
        Assert.Equal([0, 1, 2, 0, 1, 2], Enumerable.Range(0, 6).Select(s => HeadAllocation.SmoothWeightedRoundRobin(weights, s)));
    }

    [Theory]
    [InlineData("gpt2/0/5", 5)]
    [InlineData("gpt2/3/5", 8)]
    [InlineData("my.model/11/0", 11)]
    [InlineData("catalog", null)]
    public void Slot_is_group_plus_layer(string key, int? slot) => Assert.Equal(slot, HeadAllocation.SlotOf(key));

    private static int[] Counts(int groups, int[] weights)
    {
        var counts = new int[weights.Length];
        for (int g = 0; g < groups; g++) counts[HeadAllocation.SmoothWeightedRoundRobin(weights, g)]++;
        return counts;
    }
}
