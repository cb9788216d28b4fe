using Headwise.Contracts;
using Headwise.Grains.Forward;

namespace Headwise.Grains.Tests.Forward;

public class ScatterTreeTests
{
    private static SiloAssignment[] Silos(int count) =>
        Enumerable.Range(0, count).Select(i => new SiloAssignment($"10.0.0.{i}:11111", [i])).ToArray();

    // Every silo below a node, in tree order.
    private static IEnumerable<SiloAssignment> Walk(IReadOnlyList<SiloAssignment> subtree, int fanout) =>
        ScatterTree.Children(subtree, fanout).SelectMany(c => Walk(c.Below, fanout).Prepend(c.Child));

    [Theory]
    [InlineData(1, 4)]
    [InlineData(3, 4)]
    [InlineData(7, 2)]
    [InlineData(31, 4)]
    [InlineData(31, 1)]
    public void Every_silo_is_reached_exactly_once_and_no_node_has_more_children_than_the_fanout(int silos, int fanout)
    {
        var all = Silos(silos);
        var reached = Walk(all, fanout).ToList();
        Assert.Equal(all.Select(s => s.Silo).Order(), reached.Select(s => s.Silo).Order());

        void Check(IReadOnlyList<SiloAssignment> subtree)
        {
            var children = ScatterTree.Children(subtree, fanout);
            Assert.True(children.Count <= fanout);
            foreach (var child in children) Check(child.Below);
        }
        Check(all);
    }

    [Theory]
    [InlineData(3, 4, 1)]   // flat: no more remote silos than the fanout
    [InlineData(7, 2, 3)]   // 2 children of 3 each, then 1 of 1... depth log2
    [InlineData(31, 4, 3)]
    [InlineData(0, 4, 0)]
    public void Depth_grows_with_the_logarithm_of_the_silo_count(int silos, int fanout, int depth) =>
        Assert.Equal(depth, ScatterTree.Depth(silos, fanout));

    [Theory]
    [InlineData(0, 3, 12L << 20, 4)]       // up to 4 remote silos: flat
    [InlineData(0, 4, 12L << 20, 4)]
    [InlineData(0, 7, 12L << 20, 2)]       // past that a big X goes down a binary tree
    [InlineData(0, 31, 16L << 20, 2)]
    [InlineData(0, 31, 4096, 4)]           // a decode step's X: wide, depth costs a message per level
    [InlineData(0, 7, (1 << 20) - 4, 4)]
    [InlineData(0, 7, 1 << 20, 2)]
    [InlineData(3, 31, 16L << 20, 3)]      // Headwise__TreeFanout set: as set, whatever the pass
    [InlineData(8, 2, 4096, 8)]
    public void The_fanout_is_wide_for_few_silos_or_a_small_X_and_binary_for_a_big_X_over_many(int configured, int remote, long bytes,
        int fanout) =>
        Assert.Equal(fanout, ScatterTree.FanoutFor(configured, remote, bytes));

    [Theory]
    [InlineData(null, 0, 192)]
    [InlineData(null, 1, 192)]    // flat: every remote silo hears from the coordinator
    [InlineData(null, 2, 96)]     // through a relay: smaller pieces fill the tree sooner
    [InlineData(null, 5, 96)]
    [InlineData(0, 3, 0)]         // Headwise__PieceRows=0: whole
    [InlineData(240, 1, 240)]
    [InlineData(240, 3, 240)]
    public void Pieces_are_192_rows_in_a_flat_tree_96_through_relays_unless_configured(int? configured, int depth, int rows) =>
        Assert.Equal(rows, ScatterTree.PieceRowsFor(configured, depth));
}

public class OutputProjectionCostTests
{
    [Fact]
    public void Several_heads_per_silo_send_partial_sums()
    {
        // GPT-2 small, T = 1024, 6 heads here and 6 on one other silo: that silo's W_O (0.6 GFLOP) costs more than the
        // 1.5 MB more a partial sum carries than its Z.
        var spec = new AttentionSpec { ModelDim = 768, HeadCount = 12 }.Resolve();
        var (mode, partial, gathered) = OutputProjectionCost.Choose(spec, 1, 1024, 6, [6], 4, 4, 1.7e9, 100);
        Assert.Equal(OutputProjectionMode.PartialSums, mode);
        Assert.True(partial < gathered);
    }

    [Fact]
    public void One_narrow_head_per_silo_of_a_wide_model_on_a_slow_link_gathers_Z()
    {
        // 4096 wide, 32 heads of 128, one per silo, 1 Gbit/s: a partial sum is 32× the bytes of that head's Z.
        var spec = new AttentionSpec { ModelDim = 4096, HeadCount = 32 }.Resolve();
        var (mode, _, _) = OutputProjectionCost.Choose(spec, 1, 64, 1, Enumerable.Repeat(1, 31).ToArray(), 4, 32, 1.25e8, 1000);
        Assert.Equal(OutputProjectionMode.Gathered, mode);
    }
}
