using System.Globalization;

namespace Headwise.Scaling;

/// <summary>The projection table of docs/scaling.md: the OLMo-7B-like layer over M machines, as built and with the parts not built yet.</summary>
internal static class ScalingProjection
{
    /// <param name="channel">The tensor channel's fitted cost (the hop command measures it); X and the partial sums travel there.</param>
    public static void Print(ScalingModel model, ScalingModel channel)
    {
        var invariant = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(invariant,
            $"## Projection: OLMo-7B-like layer (4096 wide, 32 heads, head_dim 128), T=1024, f32, 25 Gbit/s, machines of {model.GflopsPerMachine:F0} GFLOP/s, tree fanout 4\n"));
        Console.WriteLine("| machines | tensors in Orleans messages: ms (efficiency) | as built, tensor channel | + X and partial sums in 16 pieces, pipelined (not built) |");
        Console.WriteLine("|---|---|---|---|");
        double single = model.ForwardMs(4096, 32, 128, 1024, 1, 25, 4);
        foreach (int machines in new[] { 1, 2, 4, 8, 16, 32 })
        {
            string Cell(double ms) => string.Create(invariant, $"{ms:F0} ({single / (machines * ms) * 100:F0}%)");
            Console.WriteLine($"| {machines} | {Cell(model.ForwardMs(4096, 32, 128, 1024, machines, 25, 4))} | " +
                $"{Cell(channel.ForwardMs(4096, 32, 128, 1024, machines, 25, 4))} | " +
                $"{Cell(channel.ForwardMs(4096, 32, 128, 1024, machines, 25, 4, chunks: 16))} |");
        }
    }
}
