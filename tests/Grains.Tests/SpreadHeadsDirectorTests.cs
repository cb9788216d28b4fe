using Headwise.Grains.Placement;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Headwise.Grains.Tests;

/// <summary>The head placement director on its own, over a fake placement context and silo metadata.</summary>
public sealed class SpreadHeadsDirectorTests
{
    private static readonly SiloAddress[] Silos = HeadAllocationTests.Silos(3);

    [Fact]
    public async Task Places_each_head_where_the_allocation_says()
    {
        var director = Director(new HeadAllocationTests.FakeMetadataCache());
        var placed = await Task.WhenAll(Enumerable.Range(0, 6).Select(g => director.OnAddActivation(
            new SpreadHeadsStrategy(), Target($"m/0/{g}"), new Context(Silos))));
        Assert.Equal(Enumerable.Range(0, 6).Select(g => HeadAllocation.SiloFor(g, Silos, null)), placed);
    }

    [Fact]
    public async Task A_placement_hint_naming_a_compatible_silo_wins()
    {
        // The layer that judged head 0 misplaced names its silo; the silo migrating the head may not agree yet.
        var director = Director(new HeadAllocationTests.FakeMetadataCache());
        var hinted = Silos.First(s => !s.Equals(HeadAllocation.SiloFor(0, Silos, null)));
        var context = new Dictionary<string, object> { [IPlacementDirector.PlacementHintKey] = hinted };
        Assert.Equal(hinted, await director.OnAddActivation(new SpreadHeadsStrategy(), Target("m/0/0", context), new Context(Silos)));
    }

    [Fact]
    public async Task A_placement_hint_naming_a_silo_that_cannot_host_the_head_is_ignored()
    {
        var director = Director(new HeadAllocationTests.FakeMetadataCache());
        var gone = HeadAllocationTests.Silos(5)[4];
        var context = new Dictionary<string, object> { [IPlacementDirector.PlacementHintKey] = gone };
        Assert.Equal(HeadAllocation.SiloFor(0, Silos, null),
            await director.OnAddActivation(new SpreadHeadsStrategy(), Target("m/0/0", context), new Context(Silos)));
    }

    private static SpreadHeadsDirector Director(ISiloMetadataCache metadata) =>
        new(new ServiceCollection().AddSingleton(metadata).BuildServiceProvider());

    private static PlacementTarget Target(string key, Dictionary<string, object>? context = null) =>
        new(GrainId.Create("head", key), context ?? [], default, 0);

    private sealed class Context(SiloAddress[] compatible) : IPlacementContext
    {
        public SiloAddress[] GetCompatibleSilos(PlacementTarget target) => compatible;
        public IReadOnlyDictionary<ushort, SiloAddress[]> GetCompatibleSilosWithVersions(PlacementTarget target) =>
            new Dictionary<ushort, SiloAddress[]> { [0] = compatible };
        public SiloAddress LocalSilo => compatible[0];
        public SiloStatus LocalSiloStatus => SiloStatus.Active;
    }
}
