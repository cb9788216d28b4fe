using System.Diagnostics;
using System.Numerics.Tensors;
using Headwise.Kernels;

namespace Headwise.Scaling;

/// <summary>
/// The anchor of the pinned table: the GPT-2-small-shaped layer computed in this process with the silos' SIMD kernel,
/// no Orleans and no network: 12 head groups over <c>threads</c> threads, each thread multiplying its groups' Z by
/// their rows of W_O, as a silo's compute threads do.
/// </summary>
internal sealed class InProcessLayer
{
    private const int ModelDim = 768, Heads = 12, HeadDim = 64;
    private readonly SimdKernel _kernel = new();
    private readonly HeadGroupWeights[] _groups;
    private readonly float[] _outputWeights;
    private readonly float[] _input, _output;
    private readonly float[][] _concat, _partials;      // per thread: its heads' Z side by side, its partial sum of W_O
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
        // One run per thread, at most one per core.
        int threads = Math.Clamp(Environment.ProcessorCount, 1, Heads);
        _concat = Enumerable.Range(0, threads).Select(_ => new float[tokens * Heads * HeadDim]).ToArray();
        _partials = Enumerable.Range(0, threads).Select(_ => new float[tokens * ModelDim]).ToArray();
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
        int parts = Math.Clamp(threads, 1, _partials.Length);
        long started = Stopwatch.GetTimestamp();
        // As a silo splits its heads (SiloPass): each thread a run of heads, then their Z times their own rows of W_O.
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
        {
            bool own = KernelThreads.OwnThreadOnly;
            KernelThreads.OwnThreadOnly = true;
            try
            {
                int first = Heads * part / parts, end = Heads * (part + 1) / parts, width = (end - first) * HeadDim;
                for (int h = first; h < end; h++)
                    _kernel.Attend(_input, 1, _tokens, [], _groups[h], new AttentionOptions(1 / MathF.Sqrt(HeadDim), false, 0), _z[h], []);
                var concat = _concat[part];
                for (int h = first; h < end; h++)
                    for (int t = 0; t < _tokens; t++)
                        _z[h].AsSpan(t * HeadDim, HeadDim).CopyTo(concat.AsSpan(t * width + (h - first) * HeadDim));
                _kernel.Project(concat.AsSpan(0, _tokens * width), _tokens, width,
                    _outputWeights.AsSpan(first * HeadDim * ModelDim, width * ModelDim), ModelDim, [], _partials[part]);
            }
            finally
            {
                KernelThreads.OwnThreadOnly = own;
            }
        });
        _partials[0].CopyTo(_output, 0);
        for (int part = 1; part < parts; part++) TensorPrimitives.Add(_output, _partials[part], _output);
        return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }
}
