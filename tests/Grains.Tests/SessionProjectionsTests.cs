using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Placement;

namespace Headwise.Grains.Tests;

/// <summary>The silo keeps one copy of a layer's W_O for all its sessions, per weights version, while any session holds it.</summary>
public sealed class SessionProjectionsTests
{
    private static LayerProjection Projection(Guid[] versions, float first) => new()
    {
        Spec = new AttentionSpec { ModelDim = 4, HeadCount = 2 }.Resolve(),
        OutputWeights = FloatBytes.ToBytes([first, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
        OutputBias = FloatBytes.ToBytes([1f, 1, 1, 1]),
        HeadVersions = versions,
    };

    [Fact]
    public void Sessions_of_one_layer_and_version_share_one_copy_and_a_new_upload_gets_its_own()
    {
        var projections = new SessionProjections();
        var versions = new[] { Guid.NewGuid(), Guid.NewGuid() };
        var first = projections.Get("m", 0, Projection(versions, 1));
        var second = projections.Get("m", 0, Projection([.. versions], 1));
        Assert.Same(first, second);
        Assert.Equal(1f, first.OutputWeights[0]);
        Assert.Equal([1f, 1, 1, 1], first.OutputBias);

        // Another layer, or the same layer's weights uploaded again, is another copy.
        Assert.NotSame(first, projections.Get("m", 1, Projection(versions, 1)));
        var reuploaded = projections.Get("m", 0, Projection([versions[0], Guid.NewGuid()], 9));
        Assert.NotSame(first, reuploaded);
        Assert.Equal(9f, reuploaded.OutputWeights[0]);

        // b_O belongs to the layer: a new one with the heads' versions unchanged is a new copy too.
        var newBias = Projection(versions, 1) with { OutputBias = FloatBytes.ToBytes([2f, 2, 2, 2]) };
        Assert.Equal([2f, 2, 2, 2], projections.Get("m", 0, newBias).OutputBias);
    }

    [Fact]
    public void A_layer_that_left_W_O_out_is_served_from_the_copy_held()
    {
        var projections = new SessionProjections();
        var versions = new[] { Guid.NewGuid(), Guid.NewGuid() };
        var held = projections.Get("m", 0, Projection(versions, 1));
        var omitted = Projection([.. versions], 1) with { OutputWeights = [], OutputWeightsHeld = true };

        Assert.Same(held, projections.Get("m", 0, omitted, held));

        // Only b_O changed: a new copy with the new b_O and the held W_O (the same rows: the same head versions).
        var newBias = projections.Get("m", 0, omitted with { OutputBias = FloatBytes.ToBytes([2f, 2, 2, 2]) }, held);
        Assert.NotSame(held, newBias);
        Assert.Same(held.OutputWeights, newBias.OutputWeights);
        Assert.Equal([2f, 2, 2, 2], newBias.OutputBias);
    }

    [Fact]
    public void W_O_left_out_for_versions_not_held_is_refused_rather_than_guessed()
    {
        var projections = new SessionProjections();
        var versions = new[] { Guid.NewGuid() };
        var omitted = Projection(versions, 1) with { OutputWeights = [], OutputWeightsHeld = true };
        Assert.Throws<InvalidOperationException>(() => projections.Get("m", 0, omitted));
        var other = projections.Get("m", 1, Projection([Guid.NewGuid()], 1));
        Assert.Throws<InvalidOperationException>(() => projections.Get("m", 0, omitted, other));
    }

    [Fact]
    public void A_copy_no_session_holds_is_let_go()
    {
        var projections = new SessionProjections();
        var versions = new[] { Guid.NewGuid() };
        var weak = Held(projections, versions);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.False(weak.TryGetTarget(out _));
    }

    // In its own frame so no local keeps the copy alive.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static WeakReference<SharedProjection> Held(SessionProjections projections, Guid[] versions) =>
        new(projections.Get("m", 0, Projection(versions, 1)));
}
