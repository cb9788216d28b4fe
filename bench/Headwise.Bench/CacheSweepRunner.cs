using System.Diagnostics;
using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>
/// A silo's decode caches under load, on one thread and without the cluster: <c>count</c> caches (64 sessions × 12
/// head groups by default), each prefilled with <c>context</c> tokens, then <c>steps</c> rounds in which every cache
/// appends one token and attends with one query (<see cref="IncrementalAttention.AttendCached"/>), as a round of
/// batched steps does. The caches no longer fit any CPU cache, so this times what the layout costs in memory traffic and
/// page walks. Two policies in alternation: caches that grow by doubling (the first step after the prefill re-lays every
/// row) and caches that take their reservation at once (<see cref="KeyValueCache"/>'s reservedTokens).
/// </summary>
internal static class CacheSweepRunner
{
    public static int Run(string[] args)
    {
        int count = args.Length > 0 ? int.Parse(args[0]) : 768;
        int context = args.Length > 1 ? int.Parse(args[1]) : 1024;
        int steps = args.Length > 2 ? int.Parse(args[2]) : 16;
        int maxTokens = args.Length > 3 ? int.Parse(args[3]) : 2048;
        const int headDim = 64, repetitions = 5;
        Console.WriteLine($"caches: {count} caches, context {context}, {steps} steps, max_tokens {maxTokens}, dh {headDim}, 1 thread; load {TableRunner.LoadAverage()}");

        var random = new Random(1);
        var prefill = Enumerable.Range(0, context * headDim).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        var rows = Enumerable.Range(0, steps * headDim).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        var query = Enumerable.Range(0, headDim).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        var output = new float[headDim];
        var shape = new HeadGroupShape(headDim, headDim, 1);
        var options = new AttentionOptions(1 / MathF.Sqrt(headDim), Causal: true, Window: 0);

        (double First, double Later) Sweep(int reservedTokens)
        {
            var caches = new KeyValueCache[count];
            for (int c = 0; c < count; c++)
            {
                caches[c] = new KeyValueCache(headDim, 0, maxTokens, reservedTokens);
                caches[c].Append(prefill, prefill, context);
            }
            var rounds = new List<double>();
            for (int step = 0; step < steps; step++)
            {
                var row = rows.AsSpan(step * headDim, headDim);
                long started = Stopwatch.GetTimestamp();
                foreach (var cache in caches)
                {
                    cache.Append(row, row, 1);
                    IncrementalAttention.AttendCached(query, 1, cache.Position - 1, cache, shape, options, output);
                }
                rounds.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds / count);
            }
            double first = rounds[0];
            rounds.RemoveAt(0);
            rounds.Sort();
            return (first, rounds[rounds.Count / 2]);
        }

        // Untimed once each, for the tiered JIT.
        Sweep(0);
        Sweep(maxTokens);
        var grown = new List<(double First, double Later)>();
        var reserved = new List<(double First, double Later)>();
        for (int r = 0; r < repetitions; r++)
        {
            grown.Add(Sweep(0));
            reserved.Add(Sweep(maxTokens));
        }
        static double Median(IEnumerable<double> values) => values.Order().ElementAt(repetitions / 2);
        Console.WriteLine("| policy | first step after the prefill, µs per cache | later steps (median), µs per cache | mean over the steps |");
        Console.WriteLine("|---|---:|---:|---:|");
        foreach (var (name, runs) in new[] { ("grown by doubling", grown), ("reserved at once", reserved) })
        {
            double first = Median(runs.Select(x => x.First)), rest = Median(runs.Select(x => x.Later));
            Console.WriteLine($"| {name} | {first:F2} | {rest:F2} | {(first + (steps - 1) * rest) / steps:F2} |");
        }
        Console.WriteLine($"medians of {repetitions} sweeps each, alternated; load {TableRunner.LoadAverage()}");
        return 0;
    }
}
