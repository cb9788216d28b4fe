using System.Numerics.Tensors;
using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>
/// One layer with seeded weights and input, and the two ways of running it the table compares:
/// Headwise's (the head groups' <see cref="IHeadKernel.Attend"/> split over the cores as a silo splits them, each
/// core then multiplying its groups' Z by their rows of W_O) and the OpenBLAS
/// anchor (per head: one sgemm for Q, K, V, one for the scores, a softmax, one for weights·V; then W_O; all
/// on one thread).
/// </summary>
internal sealed unsafe class LayerFixture
{
    private readonly LayerShape shape;
    private readonly float scale;
    private readonly float[] input;                     // [T, D]
    private readonly HeadGroupWeights[] groups;
    private readonly float[][] joinedWeights;           // per group [D, (g+2)·dh], for OpenBLAS
    private readonly float[][] joinedBias;              // per group [(g+2)·dh]
    private readonly float[] outputWeights;             // [Hq·dh, D]
    private readonly float[] outputBias;                // [D]
    private readonly float[][] groupOutputs;            // per group [T, g·dh]
    private readonly float[] concat;                    // [T, Hq·dh]
    private readonly float[] output;                    // [T, D]
    private readonly float[] qkv;                       // [T, (g+2)·dh], OpenBLAS scratch
    private readonly float[] scores;                    // [T, T], OpenBLAS scratch
    private readonly ParallelOptions headThreads;
    private readonly float[][] partials;                // per thread [T, D]: its groups' Z · their rows of W_O
    private readonly float[][] partConcat;              // per thread [T, its groups' g·dh]

    public LayerFixture(LayerShape shape, int seed = 1)
    {
        this.shape = shape;
        scale = 1 / MathF.Sqrt(shape.HeadDim);
        var random = new Random(seed);
        int d = shape.ModelDim, dh = shape.HeadDim, g = shape.GroupSize, t = shape.Tokens;
        int groupWidth = g * dh, projectionWidth = groupWidth + 2 * dh;
        input = Normal(random, t * d, 1.0);
        double std = 0.02;
        groups = new HeadGroupWeights[shape.KvHeadCount];
        joinedWeights = new float[shape.KvHeadCount][];
        joinedBias = new float[shape.KvHeadCount][];
        groupOutputs = new float[shape.KvHeadCount][];
        var groupShape = new HeadGroupShape(d, dh, g);
        for (int group = 0; group < shape.KvHeadCount; group++)
        {
            var weights = new HeadGroupWeights(groupShape,
                Normal(random, d * groupWidth, std), Normal(random, d * dh, std), Normal(random, d * dh, std),
                Normal(random, groupWidth, std), Normal(random, dh, std), Normal(random, dh, std));
            groups[group] = weights;
            var joined = new float[d * projectionWidth];
            for (int row = 0; row < d; row++)
            {
                weights.Query.AsSpan(row * groupWidth, groupWidth).CopyTo(joined.AsSpan(row * projectionWidth));
                weights.Key.AsSpan(row * dh, dh).CopyTo(joined.AsSpan(row * projectionWidth + groupWidth));
                weights.Value.AsSpan(row * dh, dh).CopyTo(joined.AsSpan(row * projectionWidth + groupWidth + dh));
            }
            joinedWeights[group] = joined;
            joinedBias[group] = [.. weights.QueryBias!, .. weights.KeyBias!, .. weights.ValueBias!];
            groupOutputs[group] = new float[t * groupWidth];
        }
        outputWeights = Normal(random, shape.HeadCount * dh * d, std);
        outputBias = Normal(random, d, std);
        concat = new float[t * shape.HeadCount * dh];
        output = new float[t * d];
        qkv = new float[t * projectionWidth];
        scores = new float[(long)t * t <= int.MaxValue ? t * t : throw new ArgumentException("T too large")];
        headThreads = new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount };
        int parts = Math.Clamp(Environment.ProcessorCount, 1, shape.KvHeadCount);
        partials = Enumerable.Range(0, parts).Select(_ => new float[t * d]).ToArray();
        partConcat = Enumerable.Range(0, parts).Select(_ => new float[t * (shape.KvHeadCount + parts - 1) / parts * groupWidth]).ToArray();
    }

    public LayerShape Shape => shape;
    public float[] Output => output;

    /// <summary>Readies every group for the kernel, as the head grains do when they activate.</summary>
    public void Prepare(IHeadKernel kernel)
    {
        foreach (var group in groups) kernel.Prepare(group);
    }

    /// <summary>
    /// Headwise as a silo computes its heads (SiloPass): each thread takes a run of groups, then multiplies their Z by
    /// their own rows of W_O into a partial sum of its own; the partials and b_O are added at the end.
    /// </summary>
    public void Headwise(IHeadKernel kernel)
    {
        var options = new AttentionOptions(scale, shape.Causal, 0);
        int t = shape.Tokens, d = shape.ModelDim, groupWidth = shape.GroupSize * shape.HeadDim;
        int parts = partials.Length;
        Parallel.For(0, parts, headThreads, part =>
        {
            // As on a silo's compute threads: the kernels stay on the thread that calls them.
            bool own = KernelThreads.OwnThreadOnly;
            KernelThreads.OwnThreadOnly = true;
            try
            {
                int first = groups.Length * part / parts, end = groups.Length * (part + 1) / parts, width = (end - first) * groupWidth;
                for (int group = first; group < end; group++)
                    kernel.Attend(input, 1, t, [], groups[group], options, groupOutputs[group], []);
                var packed = partConcat[part];
                for (int group = first; group < end; group++)
                    for (int row = 0; row < t; row++)
                        groupOutputs[group].AsSpan(row * groupWidth, groupWidth).CopyTo(packed.AsSpan(row * width + (group - first) * groupWidth));
                kernel.Project(packed.AsSpan(0, t * width), t, width, outputWeights.AsSpan(first * groupWidth * d, width * d), d,
                    ReadOnlySpan<float>.Empty, partials[part]);
            }
            finally
            {
                KernelThreads.OwnThreadOnly = own;
            }
        });
        for (int row = 0; row < t; row++)
        {
            var y = output.AsSpan(row * d, d);
            TensorPrimitives.Add(partials[0].AsSpan(row * d, d), outputBias, y);
            for (int part = 1; part < parts; part++) TensorPrimitives.Add(y, partials[part].AsSpan(row * d, d), y);
        }
    }

    /// <summary>Only the groups' Attend calls, on the thread pool as in <see cref="Headwise"/>.</summary>
    public void AttendAll(IHeadKernel kernel)
    {
        var options = new AttentionOptions(scale, shape.Causal, 0);
        int t = shape.Tokens;
        Parallel.For(0, groups.Length, headThreads, group =>
            kernel.Attend(input, 1, t, [], groups[group], options, groupOutputs[group], []));
    }

    /// <summary>Only the gather of the groups' outputs into one [T, Hq·dh] buffer.</summary>
    public void GatherOnly() => Gather();

    /// <summary>Headwise on the calling thread only: groups one after another, then W_O.</summary>
    public void HeadwiseOneThread(IHeadKernel kernel)
    {
        var options = new AttentionOptions(scale, shape.Causal, 0);
        int t = shape.Tokens;
        for (int group = 0; group < groups.Length; group++)
            kernel.Attend(input, 1, t, [], groups[group], options, groupOutputs[group], []);
        Gather();
        kernel.Project(concat, t, shape.HeadCount * shape.HeadDim, outputWeights, shape.ModelDim, outputBias, output);
    }

    /// <summary>Oversubscribed: the groups spread over <paramref name="threads"/> dedicated threads at once, then W_O.</summary>
    public void HeadwiseOnThreads(IHeadKernel kernel, int threads)
    {
        var options = new AttentionOptions(scale, shape.Causal, 0);
        int t = shape.Tokens;
        var workers = new Thread[threads];
        for (int w = 0; w < threads; w++)
        {
            int first = w;
            workers[w] = new Thread(() =>
            {
                for (int group = first; group < groups.Length; group += threads)
                    kernel.Attend(input, 1, t, [], groups[group], options, groupOutputs[group], []);
            });
            workers[w].Start();
        }
        foreach (var worker in workers) worker.Join();
        Gather();
        kernel.Project(concat, t, shape.HeadCount * shape.HeadDim, outputWeights, shape.ModelDim, outputBias, output);
    }

    /// <summary>One head group's Attend, the unit a head grain runs.</summary>
    public void AttendOne(IHeadKernel kernel, int group = 0, Rotary rope = default) =>
        kernel.Attend(input, 1, shape.Tokens, [], groups[group], new AttentionOptions(scale, shape.Causal, 0, rope), groupOutputs[group], []);

    /// <summary>One group with RoPE the way a kernel without its own RoPE step computes it.</summary>
    public void AttendOneIncremental(IHeadKernel kernel, Rotary rope, int group = 0) =>
        IncrementalAttention.Forward(kernel, input, 1, shape.Tokens, [], groups[group], new AttentionOptions(scale, shape.Causal, 0), rope,
            groupOutputs[group], []);

    /// <summary>The coordinator's W_O on the gathered heads.</summary>
    public void ProjectOutput(IHeadKernel kernel) =>
        kernel.Project(concat, shape.Tokens, shape.HeadCount * shape.HeadDim, outputWeights, shape.ModelDim, outputBias, output);

    private void Gather()
    {
        int t = shape.Tokens, groupWidth = shape.GroupSize * shape.HeadDim, concatWidth = shape.HeadCount * shape.HeadDim;
        for (int group = 0; group < groups.Length; group++)
        {
            var z = groupOutputs[group];
            for (int row = 0; row < t; row++)
                z.AsSpan(row * groupWidth, groupWidth).CopyTo(concat.AsSpan(row * concatWidth + group * groupWidth));
        }
    }

    /// <summary>
    /// The OpenBLAS pipeline on the calling thread: per group one sgemm x·[W_Q W_K W_V] (+ bias), then per
    /// query head sgemm Q·Kᵀ·scale into [T, T], a row softmax over the visible keys (TensorPrimitives), and
    /// sgemm weights·V straight into the head's columns of the concatenation; finally sgemm concat·W_O + b.
    /// The masked scores are computed and thrown away, as a plain BLAS pipeline does.
    /// </summary>
    public void OpenBlasPipeline()
    {
        int t = shape.Tokens, d = shape.ModelDim, dh = shape.HeadDim, g = shape.GroupSize;
        int groupWidth = g * dh, projectionWidth = groupWidth + 2 * dh, concatWidth = shape.HeadCount * dh;
        fixed (float* x = input, qkvPointer = qkv, s = scores, c = concat, wo = outputWeights, y = output)
        {
            for (int group = 0; group < groups.Length; group++)
            {
                var bias = joinedBias[group];
                for (int row = 0; row < t; row++) bias.CopyTo(qkv.AsSpan(row * projectionWidth, projectionWidth));
                fixed (float* w = joinedWeights[group])
                    OpenBlas.Sgemm(t, projectionWidth, d, 1f, x, d, w, projectionWidth, false, 1f, qkvPointer, projectionWidth);
                float* k = qkvPointer + groupWidth, v = qkvPointer + groupWidth + dh;
                for (int head = 0; head < g; head++)
                {
                    OpenBlas.Sgemm(t, t, dh, scale, qkvPointer + head * dh, projectionWidth, k, projectionWidth, true, 0f, s, t);
                    for (int row = 0; row < t; row++)
                    {
                        int visible = shape.Causal ? row + 1 : t;
                        var rowScores = scores.AsSpan(row * t, t);
                        var weights = rowScores[..visible];
                        float max = TensorPrimitives.Max(weights);
                        TensorPrimitives.Subtract(weights, max, weights);
                        TensorPrimitives.Exp(weights, weights);
                        TensorPrimitives.Multiply(weights, 1f / TensorPrimitives.Sum(weights), weights);
                        rowScores[visible..].Clear();
                    }
                    OpenBlas.Sgemm(t, dh, t, 1f, s, t, v, projectionWidth, false, 0f, c + (group * g + head) * dh, concatWidth);
                }
            }
            for (int row = 0; row < t; row++) outputBias.CopyTo(output.AsSpan(row * d, d));
            OpenBlas.Sgemm(t, d, concatWidth, 1f, c, concatWidth, wo, d, false, 1f, y, d);
        }
    }

    private static float[] Normal(Random random, int count, double std)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            values[i] = (float)(std * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
        }
        return values;
    }
}
