using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>
/// A whole layer's decode step as a session's coordinator would compute it in-process (every group's
/// <see cref="IncrementalAttention.Decode"/> of one token, then W_O), at a given context. The groups' weights and caches
/// (about 13 MB at context 1024 for GPT-2 small) do not stay in L2 between steps, as in a silo, so this is the
/// memory-bound figure a single group's step is not. Public so the decode throughput bench can print it beside its
/// gRPC figures as the in-process anchor of the same run.
/// </summary>
public sealed class LayerStepTiming
{
    private readonly IHeadKernel _kernel;
    private readonly int _context, _modelDim, _headDim;
    private readonly HeadGroupShape _shape;
    private readonly HeadGroupWeights[] _weights;
    private readonly float[] _outputWeights, _outputBias, _keys, _values, _inputs, _concat, _y;
    private readonly AttentionOptions _options;

    public LayerStepTiming(IHeadKernel kernel, int context, int modelDim = 768, int headDim = 64, int groupSize = 1)
    {
        _kernel = kernel;
        _context = context;
        _modelDim = modelDim;
        _headDim = headDim;
        Groups = modelDim / headDim / groupSize;
        var random = new Random(2);
        _shape = new HeadGroupShape(modelDim, headDim, groupSize);
        _weights = Enumerable.Range(0, Groups).Select(_ => new HeadGroupWeights(_shape,
            DecodeRunner.Normal(random, modelDim * _shape.QueryWidth), DecodeRunner.Normal(random, modelDim * headDim),
            DecodeRunner.Normal(random, modelDim * headDim), DecodeRunner.Normal(random, _shape.QueryWidth),
            DecodeRunner.Normal(random, headDim), DecodeRunner.Normal(random, headDim))).ToArray();
        int concatWidth = Groups * _shape.QueryWidth;
        _outputWeights = DecodeRunner.Normal(random, concatWidth * modelDim);
        _outputBias = DecodeRunner.Normal(random, modelDim);
        _options = new AttentionOptions(1 / MathF.Sqrt(headDim), Causal: true, Window: 0);
        _keys = DecodeRunner.Normal(random, context * headDim);
        _values = DecodeRunner.Normal(random, context * headDim);
        _inputs = DecodeRunner.Normal(random, DecodeRunner.StepsPerRound * modelDim);
        _concat = new float[concatWidth];
        _y = new float[modelDim];
        Bytes = 4L * (Groups * (modelDim * (_shape.QueryWidth + 2 * headDim)) + concatWidth * modelDim + Groups * 2L * context * headDim);
    }

    /// <summary>Head groups of the layer.</summary>
    public int Groups { get; }

    /// <summary>Bytes a step reads: every group's weights and cache, and W_O.</summary>
    public long Bytes { get; }

    /// <summary>The median step in milliseconds over rounds of fresh caches (at least 5 rounds and 1.5 s).</summary>
    /// <param name="parallel">The groups over all cores (as a silo's step spreads them), or one thread.</param>
    public double Measure(bool parallel)
    {
        var cores = new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount };
        var medians = new List<double>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (medians.Count < 5 || clock.Elapsed.TotalSeconds < 1.5)
        {
            var caches = Enumerable.Range(0, Groups).Select(_ => DecodeRunner.Prefilled(_headDim, _context, _keys, _values)).ToArray();
            int step = 0;
            void Group(int g) => IncrementalAttention.Decode(_kernel, _weights[g], _options, Rotary.None,
                _inputs.AsSpan(step * _modelDim, _modelDim), 1, caches[g], _concat.AsSpan(g * _shape.QueryWidth, _shape.QueryWidth));
            medians.Add(Timing.Measure(() =>
            {
                if (parallel) Parallel.For(0, Groups, cores, Group);
                else for (int g = 0; g < Groups; g++) Group(g);
                _kernel.Project(_concat, 1, _concat.Length, _outputWeights, _modelDim, _outputBias, _y);
                step++;
            }, minSeconds: 0, minRuns: DecodeRunner.StepsPerRound, maxRuns: DecodeRunner.StepsPerRound, warmups: 0).MedianMs);
        }
        medians.Sort();
        return medians[medians.Count / 2];
    }
}
