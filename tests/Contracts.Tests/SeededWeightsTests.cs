namespace Headwise.Contracts.Tests;

public class SeededWeightsTests
{
    private static readonly AttentionSpec Spec = new AttentionSpec { ModelDim = 64, HeadCount = 8, KvHeadCount = 2, HeadDim = 16, LayerCount = 2, Bias = true }.Resolve();

    private static float[] AllValues(LayerWeights[] layers) =>
        layers.SelectMany(l => l.Groups.SelectMany(g => new[] { g.Query, g.Key, g.Value, g.QueryBias!, g.KeyBias!, g.ValueBias!, g.Output })
                .Append(l.OutputBias!))
            .SelectMany(b => FloatBytes.ToFloats(b)).ToArray();

    [Fact]
    public void TheSameSeedGivesTheSameBytesAndAnotherSeedDoesNot()
    {
        float[] a = AllValues(SeededWeights.Create(Spec, 7)), b = AllValues(SeededWeights.Create(Spec, 7)), c = AllValues(SeededWeights.Create(Spec, 8));
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void ValuesLookNormalWithTheGivenStd()
    {
        float[] values = AllValues(SeededWeights.Create(Spec, 1, std: 0.5f));
        double mean = values.Average(v => (double)v);
        double std = Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
        Assert.InRange(mean, -0.01, 0.01);
        Assert.InRange(std, 0.49, 0.51);
        double within1 = values.Count(v => Math.Abs(v - mean) < std) / (double)values.Length;
        Assert.InRange(within1, 0.67, 0.70); // 68.3 % of a normal lies within one std
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void ShapesFollowTheSpecAndBiasesAreAbsentWithoutBias()
    {
        var layers = SeededWeights.Create(Spec with { Bias = false }, 1);
        Assert.Equal(2, layers.Length);
        foreach (var layer in layers)
        {
            Assert.Null(layer.OutputBias);
            Assert.Equal(2, layer.Groups.Length);
            foreach (var group in layer.Groups)
            {
                Assert.Equal(4 * 64 * 64, group.Query.Length); // D × g·dh, g·dh = 4·16
                Assert.Equal(4 * 64 * 16, group.Key.Length);
                Assert.Equal(4 * 64 * 16, group.Value.Length);
                Assert.Equal(4 * 64 * 64, group.Output.Length);
                Assert.Null(group.QueryBias);
                Assert.Null(group.KeyBias);
                Assert.Null(group.ValueBias);
            }
        }
    }

    [Fact]
    public void ABadStdIsRefused()
    {
        Expect.Invalid(() => SeededWeights.Create(Spec, 1, float.NaN), "std");
        Expect.Invalid(() => SeededWeights.Create(Spec, 1, -1f), "std");
    }
}
