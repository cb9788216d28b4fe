using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>
/// One decode step of one head group on one thread: <see cref="IncrementalAttention.Decode"/> of one token (its
/// projection, the append and the attention) with a cache already holding <c>context</c> tokens.
/// </summary>
internal static class DecodeRunner
{
    // Each timed step grows the cache by one, so a round times this many steps from `context` and then starts again
    // on a fresh cache: the key count drifts by under 3% at context 1024, and the per-step figure stays comparable.
    internal const int StepsPerRound = 32;

    public static int Run(string[] args)
    {
        int context = args.Length > 0 ? int.Parse(args[0]) : 1024;
        int modelDim = args.Length > 1 ? int.Parse(args[1]) : 768;
        int headDim = args.Length > 2 ? int.Parse(args[2]) : 64;
        int groupSize = args.Length > 3 ? int.Parse(args[3]) : 1;
        Console.WriteLine($"decode: context={context} D={modelDim} dh={headDim} g={groupSize}, 1 thread; load {TableRunner.LoadAverage()}");

        var random = new Random(1);
        var shape = new HeadGroupShape(modelDim, headDim, groupSize);
        var weights = new HeadGroupWeights(shape,
            Normal(random, modelDim * shape.QueryWidth), Normal(random, modelDim * headDim), Normal(random, modelDim * headDim),
            Normal(random, shape.QueryWidth), Normal(random, headDim), Normal(random, headDim));
        var options = new AttentionOptions(1 / MathF.Sqrt(headDim), Causal: true, Window: 0);
        var cachedKeys = Normal(random, context * headDim);
        var cachedValues = Normal(random, context * headDim);
        var inputs = Normal(random, StepsPerRound * modelDim);
        var output = new float[shape.QueryWidth];
        var kernel = new SimdKernel();

        Timing.Result Round()
        {
            var cache = Prefilled(headDim, context, cachedKeys, cachedValues);
            int step = 0;
            return Timing.Measure(() =>
                {
                    IncrementalAttention.Decode(kernel, weights, options, Rotary.None, inputs.AsSpan(step * modelDim, modelDim), 1, cache, output);
                    step++;
                }, minSeconds: 0, minRuns: StepsPerRound, maxRuns: StepsPerRound, warmups: 0);
        }

        // Untimed rounds first, so the tiered JIT has settled on its optimised code.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < 0.5) Round();
        var medians = new List<double>();
        double best = double.MaxValue;
        int runs = 0;
        clock.Restart();
        while (medians.Count < 5 || clock.Elapsed.TotalSeconds < 2)
        {
            var round = Round();
            medians.Add(round.MedianMs);
            best = Math.Min(best, round.MinMs);
            runs += round.Runs;
        }
        medians.Sort();
        Console.WriteLine($"Decode (1 token, 1 group): median {1e3 * medians[medians.Count / 2]:F1} µs, min {1e3 * best:F1} µs per step " +
            $"({runs} steps in {medians.Count} rounds of {StepsPerRound}); load {TableRunner.LoadAverage()}");

        // The part of a step that does not depend on the context: Decode's three projections of the token.
        var projected = new float[shape.QueryWidth];
        var projection = Timing.Measure(() =>
        {
            kernel.Project(inputs.AsSpan(0, modelDim), 1, modelDim, weights.Query, shape.QueryWidth, weights.QueryBias, projected);
            kernel.Project(inputs.AsSpan(0, modelDim), 1, modelDim, weights.Key, headDim, weights.KeyBias, projected.AsSpan(0, headDim));
            kernel.Project(inputs.AsSpan(0, modelDim), 1, modelDim, weights.Value, headDim, weights.ValueBias, projected.AsSpan(0, headDim));
        }, minSeconds: 0.5, maxRuns: 100_000);
        Console.WriteLine($"of which the Q, K, V projections: median {1e3 * projection.MedianMs:F1} µs, min {1e3 * projection.MinMs:F1} µs");
        LayerStep(kernel, context, modelDim, headDim, groupSize);
        return 0;
    }

    private static void LayerStep(IHeadKernel kernel, int context, int modelDim, int headDim, int groupSize)
    {
        var step = new LayerStepTiming(kernel, context, modelDim, headDim, groupSize);
        step.Measure(parallel: true);
        double oneThread = step.Measure(parallel: false), allCores = step.Measure(parallel: true);
        Console.WriteLine($"layer step ({step.Groups} groups + W_O, {step.Bytes / 1e6:F1} MB streamed): 1 thread median {1e3 * oneThread:F0} µs " +
            $"({step.Bytes / oneThread / 1e6:F1} GB/s), {Environment.ProcessorCount} cores median {1e3 * allCores:F0} µs ({step.Bytes / allCores / 1e6:F1} GB/s); " +
            $"load {TableRunner.LoadAverage()}");
    }

    /// <summary>A cache holding <paramref name="context"/> tokens with room for a round's steps.</summary>
    internal static KeyValueCache Prefilled(int headDim, int context, float[] keys, float[] values)
    {
        var cache = new KeyValueCache(headDim);
        // Appending all but the last row, then it, makes the cache grow on the last append (as a live session's does)
        // rather than on the first timed step.
        cache.Append(keys.AsSpan(0, (context - 1) * headDim), values.AsSpan(0, (context - 1) * headDim), context - 1);
        cache.Append(keys.AsSpan((context - 1) * headDim), values.AsSpan((context - 1) * headDim), 1);
        return cache;
    }

    internal static float[] Normal(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(0.05 * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        return values;
    }
}
