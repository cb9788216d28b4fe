using System.Diagnostics;
using Headwise.Kernels;

namespace Headwise.Scaling;

/// <summary>
/// The anchor of the pinned table: the GPT-2-small-shaped layer computed in this process with the silos' SIMD kernel,
/// no Orleans and no network: 12 head groups' Attend over <c>threads</c> threads, then W_O over the cores.
/// </summary>
internal sealed class InProcessLayer
{
    private const int ModelDim = 768, Heads = 12, HeadDim = 64;
    private readonly SimdKernel _kernel = new();
    private readonly HeadGroupWeights[] _groups;
    private readonly float[] _outputWeights;
    private readonly float[] _input, _concat, _output;
    private readonly float[][] _z;
    private readonly int _tokens;

    public InProcessLayer(int tokens)
    {
        _tokens = tokens;
        var random = new Random(1);
        float[] Normal(int count, double std) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1) * (float)std).ToArray();
        var shape = new HeadGroupShape(ModelDim, HeadDim, 1);
        _groups = Enumerable.Range(0, Heads).Select(_ => new HeadGroupWeights(shape,
            Normal(ModelDim * HeadDim, 0.02), Normal(ModelDim * HeadDim, 0.02), Normal(ModelDim * HeadDim, 0.02))).ToArray();
        foreach (var group in _groups) _kernel.Prepare(group);
        _outputWeights = Normal(Heads * HeadDim * ModelDim, 0.02);
        _input = Normal(tokens * ModelDim, 1);
        _z = Enumerable.Range(0, Heads).Select(_ => new float[tokens * HeadDim]).ToArray();
        _concat = new float[tokens * Heads * HeadDim];
        _output = new float[tokens * ModelDim];
    }

    /// <summary>Median and best milliseconds of one layer pass with the heads over <paramref name="threads"/> threads.</summary>
    public (double Median, double Best) Measure(int threads, int repetitions)
    {
        var times = new List<double>();
        for (int i = 0; i < repetitions + 3; i++)
        {
            double ms = PassMs(threads);
            if (i >= 3) times.Add(ms);
        }
        times.Sort();
        return (times[times.Count / 2], times[0]);
    }

    /// <summary>Milliseconds of one layer pass with the heads over <paramref name="threads"/> threads.</summary>
    public double PassMs(int threads)
    {
        var options = new ParallelOptions { MaxDegreeOfParallelism = threads };
        long started = Stopwatch.GetTimestamp();
        Parallel.For(0, Heads, options, h => _kernel.Attend(_input, 1, _tokens, [], _groups[h],
            new AttentionOptions(1 / MathF.Sqrt(HeadDim), false, 0), _z[h], []));
        for (int h = 0; h < Heads; h++)
            for (int t = 0; t < _tokens; t++)
                _z[h].AsSpan(t * HeadDim, HeadDim).CopyTo(_concat.AsSpan(t * Heads * HeadDim + h * HeadDim));
        _kernel.Project(_concat, _tokens, Heads * HeadDim, _outputWeights, ModelDim, [], _output);
        return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }
}
