namespace Headwise.Kernels.Tests;

/// <summary>
/// <see cref="BatchedDecode"/> against two references: each sequence stepped alone through
/// <see cref="IncrementalAttention.Decode"/> (on caches that saw the same history), and a float64 oracle written here
/// from the definitions: Q, K, V = x·W + b; RoPE (Hugging Face rotate_half on the first d dims) on Q and K at absolute
/// positions; for the token at position i and query head h, z = softmax(scale · q·Kᵀ) · V over keys at positions
/// max(0, i − window + 1) … i, every query head of the group on its one K and V (GQA).
/// Bounds: batched and alone differ by at most 1e-5 × the largest |z| of the sequence, and so does each from the oracle.
/// Not bitwise: the SIMD GEMM takes other code paths for one row than for many and sums in another order (seen: up to
/// ~1.5e-6 × the largest |z| apart, a few float32 ulps of Q·K amplified by the softmax).
/// </summary>
public sealed class BatchedDecodeTests
{
    private const int ModelDim = 16, HeadDim = 8, RotaryDim = 6;
    private const float Theta = 500f;

    // History length and step rows of each sequence: different positions and token counts; sequence 3 has an empty cache
    // and a step of 20 rows, so it takes the fused prefill alone and splits the others' rows in two.
    private static readonly int[] History = [9, 0, 31, 0, 4, 17, 2];
    private static readonly int[] Rows = [1, 1, 2, 20, 3, 1, 1];

    public static TheoryData<KernelKind, int, int, bool> Cases => new()
    {
        // kernel, g (query heads per K/V head), window, RoPE
        { KernelKind.Simd, 1, 0, false }, { KernelKind.Simd, 3, 0, false }, { KernelKind.Simd, 3, 0, true },
        { KernelKind.Simd, 1, 5, true }, { KernelKind.Simd, 3, 5, false }, { KernelKind.Simd, 3, 5, true },
        { KernelKind.Reference, 3, 0, true }, { KernelKind.Reference, 1, 5, false },
        // The GPU kernel's projections (CUDA when present, else ILGPU's CPU accelerator).
        { KernelKind.Gpu, 3, 5, true },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Batched_steps_equal_each_sequence_alone_and_the_float64_oracle(KernelKind kind, int queryHeads, int window, bool rope)
    {
        var kernel = TestKernels.Create(kind);
        var random = new Random(queryHeads * 100 + window * 10 + (rope ? 1 : 0));
        var shape = new HeadGroupShape(ModelDim, HeadDim, queryHeads);
        var weights = RandomTensors.GroupWeights(random, shape, 0.5, bias: true);
        var options = new AttentionOptions(1f / MathF.Sqrt(HeadDim), Causal: true, window);
        var rotary = rope ? new Rotary(Theta, RotaryDim) : Rotary.None;
        int sequences = History.Length;
        const int rounds = 3;
        // Every sequence's whole input: its history, then its rows of each round.
        var inputs = Enumerable.Range(0, sequences)
            .Select(s => RandomTensors.Normal(random, (History[s] + rounds * Rows[s]) * ModelDim)).ToArray();

        var batchedCaches = new KeyValueCache[sequences];
        var aloneCaches = new KeyValueCache[sequences];
        for (int s = 0; s < sequences; s++)
        {
            batchedCaches[s] = new KeyValueCache(HeadDim);
            aloneCaches[s] = new KeyValueCache(HeadDim);
            if (History[s] == 0) continue;
            var history = inputs[s].AsSpan(0, History[s] * ModelDim);
            var scratch = new float[History[s] * shape.QueryWidth];
            IncrementalAttention.Decode(kernel, weights, options, rotary, history, History[s], batchedCaches[s], scratch);
            IncrementalAttention.Decode(kernel, weights, options, rotary, history, History[s], aloneCaches[s], scratch);
        }

        for (int round = 0; round < rounds; round++)
        {
            int total = Rows.Sum();
            var x = new float[total * ModelDim];
            for (int s = 0, offset = 0; s < sequences; offset += Rows[s], s++)
                inputs[s].AsSpan((History[s] + round * Rows[s]) * ModelDim, Rows[s] * ModelDim).CopyTo(x.AsSpan(offset * ModelDim));
            var batched = new float[total * shape.QueryWidth];
            BatchedDecode.Decode(kernel, weights, options, rotary, x, Rows, batchedCaches, batched);

            for (int s = 0, offset = 0; s < sequences; offset += Rows[s], s++)
            {
                var alone = new float[Rows[s] * shape.QueryWidth];
                IncrementalAttention.Decode(kernel, weights, options, rotary, x.AsSpan(offset * ModelDim, Rows[s] * ModelDim), Rows[s], aloneCaches[s], alone);
                var mine = batched.AsSpan(offset * shape.QueryWidth, alone.Length);
                float largest = alone.Max(MathF.Abs);
                for (int i = 0; i < alone.Length; i++)
                {
                    Assert.True(Math.Abs(mine[i] - alone[i]) <= 1e-5 * largest,
                        $"round {round}, sequence {s}: z[{i / shape.QueryWidth}, {i % shape.QueryWidth}] batched {mine[i]}, alone {alone[i]}");
                }

                int seen = History[s] + (round + 1) * Rows[s];
                Assert.Equal(seen, batchedCaches[s].Position);
                var expected = Oracle(inputs[s], seen, weights, shape, options.Scale, window, rope);
                double bound = 1e-5 * expected.Max(Math.Abs);
                int first = seen - Rows[s];
                for (int i = 0; i < alone.Length; i++)
                {
                    double wanted = expected[first * shape.QueryWidth + i];
                    Assert.True(Math.Abs(mine[i] - wanted) <= bound,
                        $"round {round}, sequence {s}: z[{first + i / shape.QueryWidth}, {i % shape.QueryWidth}] is {mine[i]}, the oracle {wanted}");
                }
            }
        }
    }

    [Fact]
    public void A_sequence_listed_twice_is_refused_before_any_cache_changes()
    {
        var shape = new HeadGroupShape(ModelDim, HeadDim, 1);
        var weights = RandomTensors.GroupWeights(new Random(1), shape, 0.5, bias: false);
        var cache = new KeyValueCache(HeadDim);
        var error = Assert.Throws<ArgumentException>(() => BatchedDecode.Decode(new SimdKernel(), weights,
            new AttentionOptions(1, Causal: true, 0), Rotary.None, new float[2 * ModelDim], [1, 1], [cache, cache], new float[2 * HeadDim]));
        Assert.Contains("share one cache", error.Message);
        Assert.Equal(0, cache.Position);
    }

    // Z [tokens, g·dh] of one sequence's first `tokens` rows, in float64.
    private static double[] Oracle(float[] x, int tokens, HeadGroupWeights weights, HeadGroupShape shape, double scale, int window, bool rope)
    {
        var q = Project(x, tokens, weights.Query, weights.QueryBias!, shape.QueryWidth);
        var k = Project(x, tokens, weights.Key, weights.KeyBias!, HeadDim);
        var v = Project(x, tokens, weights.Value, weights.ValueBias!, HeadDim);
        if (rope)
            for (int t = 0; t < tokens; t++)
            {
                for (int h = 0; h < shape.QueryHeads; h++) Rotate(q, (t * shape.QueryHeads + h) * HeadDim, t);
                Rotate(k, t * HeadDim, t);
            }
        int width = shape.QueryWidth;
        var z = new double[tokens * width];
        var p = new double[tokens];
        for (int i = 0; i < tokens; i++)
            for (int h = 0; h < shape.QueryHeads; h++)
            {
                int first = window > 0 ? Math.Max(0, i - window + 1) : 0;
                double max = double.NegativeInfinity;
                for (int j = first; j <= i; j++)
                {
                    double score = 0;
                    for (int d = 0; d < HeadDim; d++) score += q[i * width + h * HeadDim + d] * k[j * HeadDim + d];
                    p[j] = score * scale;
                    max = Math.Max(max, p[j]);
                }
                double sum = 0;
                for (int j = first; j <= i; j++) sum += p[j] = Math.Exp(p[j] - max);
                for (int j = first; j <= i; j++)
                    for (int d = 0; d < HeadDim; d++)
                        z[i * width + h * HeadDim + d] += p[j] / sum * v[j * HeadDim + d];
            }
        return z;
    }

    // HF apply_rotary_pos_emb on the first RotaryDim values of the head vector at `at`, in place.
    private static void Rotate(double[] x, int at, int position)
    {
        int half = RotaryDim / 2;
        var y = new double[RotaryDim];
        for (int i = 0; i < half; i++)
        {
            double angle = position / Math.Pow(Theta, 2.0 * i / RotaryDim);
            double cos = Math.Cos(angle), sin = Math.Sin(angle);
            y[i] = x[at + i] * cos - x[at + i + half] * sin;
            y[i + half] = x[at + i + half] * cos + x[at + i] * sin;
        }
        y.CopyTo(x, at);
    }

    private static double[] Project(float[] x, int tokens, float[] w, float[] b, int outer)
    {
        var y = new double[tokens * outer];
        for (int t = 0; t < tokens; t++)
            for (int o = 0; o < outer; o++)
            {
                double sum = b[o];
                for (int i = 0; i < ModelDim; i++) sum += (double)x[t * ModelDim + i] * w[i * outer + o];
                y[t * outer + o] = sum;
            }
        return y;
    }
}
