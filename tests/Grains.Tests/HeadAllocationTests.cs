using System.Collections.Immutable;
using System.Net;
using Headwise.Grains.Placement;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Headwise.Grains.Tests;

/// <summary>
/// The placement rule on its own: equal silos (same kernel, same cores) get equal shares whatever their start-up
/// probes said; silos that really differ are weighted by speed.
/// </summary>
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

    [Theory]
    [InlineData(12, new[] { 100.0, 140.0, 70.0 }, new[] { 4, 4, 4 })]
    [InlineData(25, new[] { 100.0, 160.0, 55.0, 121.0 }, new[] { 7, 6, 6, 6 })]
    [InlineData(12, new[] { 30.0, 300.0, 100.0 }, new[] { 4, 4, 4 })]
    public void Same_kernel_and_cores_get_equal_shares_whatever_the_probes_said(int groups, double[] probes, int[] expected)
    {
        var profiles = probes.Select(p => (SiloProfile?)Measured("simd", 8, p)).ToArray();
        Assert.Equal(expected, Counts(groups, HeadAllocation.WeightsOf(profiles)));
    }

    [Fact]
    public void Different_core_counts_are_weighted_by_speed_each_class_by_its_members_mean()
    {
        // 16 cores measured 200; two 8-core silos measured 90 and 110 (mean 100, so they stay equal): 2:1:1.
        var profiles = new SiloProfile?[] { Measured("simd", 16, 200), Measured("simd", 8, 90), Measured("simd", 8, 110) };
        Assert.Equal([4, 2, 2], HeadAllocation.WeightsOf(profiles));
        Assert.Equal([6, 3, 3], Counts(12, HeadAllocation.WeightsOf(profiles)));
    }

    [Fact]
    public void A_different_kernel_is_weighted_by_speed()
    {
        var profiles = new SiloProfile?[] { Measured("gpu", 8, 400), Measured("simd", 8, 100), Measured("simd", 8, 100) };
        Assert.Equal([8, 2, 2], HeadAllocation.WeightsOf(profiles));
        Assert.Equal([8, 2, 2], Counts(12, HeadAllocation.WeightsOf(profiles)));
    }

    [Fact]
    public void An_operator_set_speed_is_a_real_difference_and_equal_set_speeds_are_equal()
    {
        Assert.Equal([4, 2], HeadAllocation.WeightsOf([Configured("simd", 8, 200), Configured("simd", 8, 100)]));
        Assert.Equal([1, 1, 1], HeadAllocation.WeightsOf([Configured("simd", 8, 100), Configured("simd", 8, 100), Configured("simd", 8, 100)]));
        // A set speed next to a measured one: weighed as given against the measured class's speed.
        Assert.Equal([6, 2], HeadAllocation.WeightsOf([Configured("simd", 8, 300), Measured("simd", 8, 100)]));
    }

    [Fact]
    public void A_silo_whose_metadata_is_unknown_gets_an_equal_share()
    {
        // Known silos equal: the unknown one joins them. Known silos different: nothing is weighted until every silo is known.
        Assert.Equal([1, 1, 1], HeadAllocation.WeightsOf([null, Measured("simd", 8, 300), Measured("simd", 8, 100)]));
        Assert.Equal([1, 1, 1], HeadAllocation.WeightsOf([Measured("gpu", 8, 400), null, Measured("simd", 8, 100)]));
        Assert.Equal([1, 1], HeadAllocation.WeightsOf([null, null]));
    }

    [Fact]
    public void Metadata_round_trips_through_the_profile()
    {
        var metadata = HeadAllocation.Metadata("simd", 12, 123.4, speedConfigured: false);
        Assert.Equal("12", metadata[HeadAllocation.CoresKey]);
        Assert.Equal(new SiloProfile("simd", 12, 123.4, false), SiloProfile.From(metadata));
        Assert.True(SiloProfile.From(HeadAllocation.Metadata("gpu", 4, 50, speedConfigured: true))!.SpeedConfigured);
        Assert.Null(SiloProfile.From(ImmutableDictionary<string, string>.Empty));
        // A silo of an older version advertised kernel and speed only: still a profile, of its own class.
        Assert.Equal(new SiloProfile("simd", null, 80, false),
            SiloProfile.From(new Dictionary<string, string> { [HeadAllocation.KernelKey] = "simd", [HeadAllocation.SpeedKey] = "80.0" }));
    }

    [Fact]
    public void Equal_silos_with_noisy_probes_and_one_not_heard_from_yet_split_twelve_heads_four_each()
    {
        // The 3-silo cluster on one machine that placed 5/4/3: same kernel and cores, probes 20% apart, and a silo
        // whose metadata the cache has not fetched yet (it answers SiloMetadata.Empty).
        var silos = Silos(3);
        var cache = new FakeMetadataCache
        {
            [silos[0]] = HeadAllocation.Metadata("simd", 2, 61.3, speedConfigured: false),
            [silos[1]] = HeadAllocation.Metadata("simd", 2, 80.9, speedConfigured: false),
        };
        var counts = Enumerable.Range(0, 12).Select(slot => HeadAllocation.SiloFor(slot, silos, cache)).GroupBy(s => s).Select(g => g.Count());
        Assert.Equal([4, 4, 4], counts);
    }

    [Fact]
    public void The_rebalance_key_changes_when_metadata_that_changes_the_weights_arrives_and_only_then()
    {
        var silos = Silos(3);
        var cache = new FakeMetadataCache
        {
            [silos[0]] = HeadAllocation.Metadata("gpu", 8, 400, speedConfigured: false),
            [silos[1]] = HeadAllocation.Metadata("simd", 8, 100, speedConfigured: false),
        };
        string before = PlacementSilos.SetKey(silos, cache);
        Assert.Equal(before, PlacementSilos.SetKey(Enumerable.Reverse(silos).ToArray(), cache));
        cache[silos[2]] = HeadAllocation.Metadata("simd", 8, 100, speedConfigured: false);
        Assert.NotEqual(before, PlacementSilos.SetKey(silos, cache));

        // Equal silos: the weights are equal before and after, so nothing needs to move.
        var equal = new FakeMetadataCache { [silos[0]] = HeadAllocation.Metadata("simd", 8, 100, speedConfigured: false) };
        string equalBefore = PlacementSilos.SetKey(silos, equal);
        equal[silos[1]] = HeadAllocation.Metadata("simd", 8, 130, speedConfigured: false);
        Assert.Equal(equalBefore, PlacementSilos.SetKey(silos, equal));
    }

    private static SiloProfile Measured(string kernel, int cores, double gflops) => new(kernel, cores, gflops, false);

    private static SiloProfile Configured(string kernel, int cores, double gflops) => new(kernel, cores, gflops, true);

    internal static SiloAddress[] Silos(int count) =>
        Enumerable.Range(0, count).Select(i => SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11111 + i), 1)).ToArray();

    /// <summary>ISiloMetadataCache as Orleans' answers: the silo's metadata once fetched, SiloMetadata.Empty before.</summary>
    internal sealed class FakeMetadataCache : ISiloMetadataCache
    {
        private readonly Dictionary<SiloAddress, SiloMetadata> _metadata = [];

        public IReadOnlyDictionary<string, string> this[SiloAddress silo]
        {
            set
            {
                var metadata = new SiloMetadata();
                // SiloMetadata's setter is private: Orleans fills it when it deserialises a silo's answer.
                typeof(SiloMetadata).GetProperty(nameof(SiloMetadata.Metadata))!.SetValue(metadata, value.ToImmutableDictionary());
                _metadata[silo] = metadata;
            }
        }

        public SiloMetadata GetSiloMetadata(SiloAddress siloAddress) => _metadata.GetValueOrDefault(siloAddress) ?? SiloMetadata.Empty;
    }

    private static int[] Counts(int groups, int[] weights)
    {
        var counts = new int[weights.Length];
        for (int g = 0; g < groups; g++) counts[HeadAllocation.SmoothWeightedRoundRobin(weights, g)]++;
        return counts;
    }
}
