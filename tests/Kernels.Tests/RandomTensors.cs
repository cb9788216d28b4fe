namespace Headwise.Kernels.Tests;

/// <summary>Seeded normal samples (Box–Muller over System.Random), so every failing case replays exactly.</summary>
internal static class RandomTensors
{
    public static float[] Normal(Random random, int count, double std = 1.0)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = (float)(std * StandardNormal(random));
        return values;
    }

    public static double StandardNormal(Random random)
    {
        double u1 = 1.0 - random.NextDouble(); // (0, 1], so the logarithm is finite
        double u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Weights of one head group drawn like a real model's: normal with the given std, biases too.</summary>
    public static HeadGroupWeights GroupWeights(Random random, HeadGroupShape shape, double std, bool bias) => new(
        shape,
        Normal(random, shape.ModelDim * shape.QueryWidth, std),
        Normal(random, shape.ModelDim * shape.HeadDim, std),
        Normal(random, shape.ModelDim * shape.HeadDim, std),
        bias ? Normal(random, shape.QueryWidth, std) : null,
        bias ? Normal(random, shape.HeadDim, std) : null,
        bias ? Normal(random, shape.HeadDim, std) : null);
}
