namespace Headwise.Kernels.Tests;

/// <summary>
/// A head group computed in pieces (X projected as its rows arrive, Z by blocks of query rows) against the same kernel's
/// fused <see cref="IHeadKernel.Attend"/> and the reference. Blocks on the 24-row query tile must give the fused Z bit for
/// bit; blocks anywhere else the reference's Z within the kernel tolerance (max abs 1e-4, relative Frobenius 1e-5).
/// </summary>
public class HeadGroupPiecesTests
{
    [Theory]
    // seed, batch, tokens, D, dh, g, causal, window, lengths, rotary dim (0: none)
    [InlineData(1, 1, 100, 64, 16, 2, false, 0, "", 0)]
    [InlineData(2, 1, 300, 48, 32, 1, true, 0, "", 8)]
    [InlineData(3, 3, 31, 33, 17, 4, true, 5, "31,1,20", 0)]
    [InlineData(4, 2, 97, 130, 64, 2, false, 0, "97,40", 16)]
    [InlineData(5, 2, 530, 24, 8, 1, true, 0, "", 8)]
    [InlineData(6, 4, 9, 65, 16, 8, false, 2, "", 0)]
    public void Pieces_give_the_fused_kernels_bits_and_the_references_numbers(int seed, int batch, int tokens, int modelDim, int headDim,
        int groupSize, bool causal, int window, string lengthList, int rotaryDim)
    {
        var random = new Random(seed);
        var shape = new HeadGroupShape(modelDim, headDim, groupSize);
        var weights = RandomTensors.GroupWeights(random, shape, 0.1, bias: seed % 2 == 0);
        var input = RandomTensors.Normal(random, batch * tokens * modelDim);
        int[] lengths = lengthList.Length == 0 ? [] : lengthList.Split(',').Select(int.Parse).ToArray();
        var options = new AttentionOptions(1 / MathF.Sqrt(headDim), causal, window, rotaryDim > 0 ? new Rotary(10000f, rotaryDim) : Rotary.None);
        int rows = batch * tokens, width = shape.QueryWidth;
        var reference = new float[rows * width];
        new ReferenceKernel().Attend(input, batch, tokens, lengths, weights, options, reference, []);

        foreach (var vectors in SimdKernelTests.Widths())
        {
            var kernel = new SimdKernel(vectors);
            var fused = new float[rows * width];
            kernel.Attend(input, batch, tokens, lengths, weights, options, fused, []);

            Assert.Equal(fused, Run(kernel, weights, input, batch, tokens, lengths, options, random, aligned: true));
            TensorAssert.Close(reference, Run(kernel, weights, input, batch, tokens, lengths, options, random, aligned: false),
                $"Z in unaligned blocks at {vectors}");
        }
    }

    [Fact]
    public void A_kernel_without_pieces_of_its_own_runs_its_fused_attend_once_every_key_is_in()
    {
        var random = new Random(7);
        var shape = new HeadGroupShape(40, 8, 3);
        var weights = RandomTensors.GroupWeights(random, shape, 0.1, bias: true);
        var input = RandomTensors.Normal(random, 2 * 50 * 40);
        var options = new AttentionOptions(0.35f, Causal: true, Window: 0);
        IHeadKernel kernel = new ReferenceKernel();
        var whole = new float[2 * 50 * shape.QueryWidth];
        kernel.Attend(input, 2, 50, [50, 33], weights, options, whole, []);

        Assert.Equal(whole, Run(kernel, weights, input, 2, 50, [50, 33], options, random, aligned: false));
    }

    [Fact]
    public void Rows_outside_the_pass_or_not_whole_are_refused_by_name()
    {
        var shape = new HeadGroupShape(16, 4, 2);
        var weights = RandomTensors.GroupWeights(new Random(1), shape, 0.1, bias: false);
        using var pieces = ((IHeadKernel)new SimdKernel()).BeginPieces(weights, 1, 10, [], new AttentionOptions(0.5f, false, 0));

        Assert.Contains("whole rows", Assert.Throws<ArgumentException>(() => pieces.Project(new float[17], 0)).Message);
        Assert.Contains("outside", Assert.Throws<ArgumentOutOfRangeException>(() => pieces.Project(new float[16 * 3], 8)).Message);
        Assert.Contains("outside", Assert.Throws<ArgumentOutOfRangeException>(() => pieces.Attend(5, 11, new float[6 * 8])).Message);
        Assert.Contains("[rows, g·dh]", Assert.Throws<ArgumentException>(() => pieces.Attend(0, 2, new float[8])).Message);
    }

    [Theory]
    [InlineData(true, 10, 10)]
    [InlineData(true, 37, 37)]
    [InlineData(false, 10, 32)]
    [InlineData(false, 33, 64)]
    [InlineData(false, 64, 64)]
    public void A_block_needs_its_visible_keys_projected_first(bool causal, int endRow, int needed)
    {
        var weights = RandomTensors.GroupWeights(new Random(1), new HeadGroupShape(8, 4, 1), 0.1, bias: false);
        using var pieces = new SimdKernel().BeginPieces(weights, 2, 32, [], new AttentionOptions(0.5f, causal, 0));
        Assert.Equal(needed, pieces.KeysNeededBy(endRow));
    }

    // X in pieces of random sizes, each block attended as soon as its keys are in (so causal blocks interleave with the
    // projection). Aligned pieces and blocks are multiples of 24 rows within a sequence; unaligned ones any size.
    private static float[] Run(IHeadKernel kernel, HeadGroupWeights weights, float[] input, int batch, int tokens, int[] lengths,
        AttentionOptions options, Random random, bool aligned)
    {
        int modelDim = weights.Shape.ModelDim, width = weights.Shape.QueryWidth, rows = batch * tokens;
        var z = new float[rows * width];
        z.AsSpan().Fill(float.NaN);
        using var pieces = kernel.BeginPieces(weights, batch, tokens, lengths, options);
        int projected = 0, attended = 0;
        while (attended < rows)
        {
            if (projected < rows)
            {
                int piece = aligned
                    ? Math.Min((projected / tokens + 1) * tokens, projected + 24 * random.Next(1, 4)) - projected
                    : Math.Min(rows - projected, random.Next(1, 70));
                pieces.Project(input.AsSpan(projected * modelDim, piece * modelDim), projected);
                projected += piece;
            }
            while (attended < rows)
            {
                int end = aligned
                    ? Math.Min(Math.Min((attended / tokens + 1) * tokens, rows), attended + 24 * random.Next(1, 4))
                    : Math.Min(rows, attended + random.Next(1, 50));
                if (pieces.KeysNeededBy(end) > projected) break;
                pieces.Attend(attended, end, z.AsSpan(attended * width, (end - attended) * width));
                attended = end;
            }
        }
        return z;
    }
}
