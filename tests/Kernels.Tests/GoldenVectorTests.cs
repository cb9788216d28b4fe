namespace Headwise.Kernels.Tests;

/// <summary>
/// Whole attention layers (every head group's Attend, the concatenation, then Project with W_O) against
/// libtorch's float64 answers in tests/golden: the check that the oracle's conventions (x·W, head column
/// blocks, GQA grouping, masks, scale 1/√dh) are the ones real models use. Tolerance as in
/// <see cref="TensorAssert"/>, the bound the golden README suggests.
/// </summary>
public class GoldenVectorTests
{
    /// <summary>One layer as a list of head groups plus W_O [Hq·dh, D] and its bias, in the kernels' x·W convention.</summary>
    private sealed record Layer(HeadGroupWeights[] Groups, float[] OutputWeights, float[]? OutputBias, int HeadCount, int HeadDim);

    [Theory]
    [InlineData("gpt2-tiny", KernelKind.Reference)]
    [InlineData("gpt2-tiny", KernelKind.Simd)]
    [InlineData("linear-mha-bias", KernelKind.Reference)]
    [InlineData("linear-mha-bias", KernelKind.Simd)]
    [InlineData("linear-gqa-window", KernelKind.Reference)]
    [InlineData("linear-gqa-window", KernelKind.Simd)]
    [InlineData("linear-wide-heads", KernelKind.Reference)]
    [InlineData("linear-wide-heads", KernelKind.Simd)]
    // The GPU kernel on ILGPU's CPU accelerator (or CUDA): every file but the GPT-2 small one, which would take it minutes.
    [InlineData("gpt2-tiny", KernelKind.Gpu)]
    [InlineData("linear-mha-bias", KernelKind.Gpu)]
    [InlineData("linear-gqa-window", KernelKind.Gpu)]
    [InlineData("linear-wide-heads", KernelKind.Gpu)]
    // The reference takes about 10 s on the GPT-2 small shape; it is checked on the four files above.
    [InlineData("gpt2-small-shape", KernelKind.Simd)]
    public void Layers_match_libtorch(string file, KernelKind kind)
    {
        var golden = GoldenFile.Open(file);
        var kernel = TestKernels.Create(kind);
        var input = golden.Floats("input");
        var lengths = golden.Ints("lengths");
        int batch = golden.Int("batch"), tokens = golden.Int("tokens"), window = golden.Int("window");

        for (int l = 0; l < golden.Int("layers"); l++)
        {
            var layer = ReadLayer(golden, l);
            float scale = 1 / MathF.Sqrt(layer.HeadDim);
            var masks = new List<(string Name, AttentionOptions Options, int[] Lengths)>
            {
                ("full", new(scale, false, 0), []),
                ("causal", new(scale, true, 0), []),
                ("padded", new(scale, false, 0), lengths),
                ("causal_padded", new(scale, true, 0), lengths),
            };
            if (window > 0) masks.Add(("causal_window", new(scale, true, window), []));

            foreach (var (name, options, maskLengths) in masks)
            {
                bool perHead = l == 0 && name == "causal";
                var (y, heads, attention) = Forward(kernel, layer, input, batch, tokens, maskLengths, options, perHead);
                TensorAssert.Close(golden.Floats($"expected.{l}.{name}"), y, $"{file} layer {l} {name}");
                if (perHead)
                {
                    TensorAssert.Close(golden.Floats("head_outputs.0.causal"), heads, $"{file} head outputs");
                    TensorAssert.Close(golden.Floats("attention.0.causal"), attention, $"{file} attention");
                }
            }
        }
    }

    /// <summary>
    /// y [B, T, D], and the per-head outputs [B, Hq, T, dh] and attention [B, Hq, T, T] laid out as the golden files hold them.
    /// </summary>
    private static (float[] Y, float[] Heads, float[] Attention) Forward(IHeadKernel kernel, Layer layer, float[] input,
        int batch, int tokens, int[] lengths, AttentionOptions options, bool perHead)
    {
        int headDim = layer.HeadDim, concatWidth = layer.HeadCount * headDim;
        var concat = new float[batch * tokens * concatWidth]; // [B, T, Hq·dh]
        var heads = new float[batch * layer.HeadCount * tokens * headDim];
        var attention = new float[perHead ? batch * layer.HeadCount * tokens * tokens : 0];
        int firstHead = 0;
        foreach (var group in layer.Groups)
        {
            int g = group.Shape.QueryHeads, groupWidth = group.Shape.QueryWidth;
            var z = new float[batch * tokens * groupWidth];
            var groupAttention = new float[perHead ? batch * g * tokens * tokens : 0];
            kernel.Attend(input, batch, tokens, lengths, group, options, z, groupAttention);
            for (int b = 0; b < batch; b++)
            {
                for (int t = 0; t < tokens; t++)
                {
                    z.AsSpan((b * tokens + t) * groupWidth, groupWidth)
                        .CopyTo(concat.AsSpan((b * tokens + t) * concatWidth + firstHead * headDim));
                    for (int k = 0; k < g; k++)
                        z.AsSpan((b * tokens + t) * groupWidth + k * headDim, headDim)
                            .CopyTo(heads.AsSpan(((b * layer.HeadCount + firstHead + k) * tokens + t) * headDim));
                }
                if (perHead)
                    groupAttention.AsSpan(b * g * tokens * tokens, g * tokens * tokens)
                        .CopyTo(attention.AsSpan((b * layer.HeadCount + firstHead) * tokens * tokens));
            }
            firstHead += g;
        }
        int modelDim = layer.OutputWeights.Length / concatWidth;
        var y = new float[batch * tokens * modelDim];
        kernel.Project(concat, batch * tokens, concatWidth, layer.OutputWeights, modelDim, layer.OutputBias, y);
        return (y, heads, attention);
    }

    private static Layer ReadLayer(GoldenFile golden, int l)
    {
        int modelDim = golden.Int("model_dim"), headCount = golden.Int("head_count"), kvHeads = golden.Int("kv_head_count");
        int headDim = golden.Int("head_dim"), groupSize = headCount / kvHeads;
        string prefix = golden.Metadata["prefix"].Replace("{layer}", l.ToString());
        var shape = new HeadGroupShape(modelDim, headDim, groupSize);

        if (golden.Metadata["layout"] == "gpt2")
        {
            // c_attn: [D, 3D] in x·W form already; Q, K, V are its column blocks, head h their columns h·dh.
            var attn = golden.Floats(prefix + "c_attn.weight");
            var bias = golden.Floats(prefix + "c_attn.bias");
            int width = 3 * modelDim;
            var groups = Enumerable.Range(0, kvHeads).Select(group => new HeadGroupWeights(shape,
                Columns(attn, modelDim, width, group * groupSize * headDim, groupSize * headDim),
                Columns(attn, modelDim, width, modelDim + group * headDim, headDim),
                Columns(attn, modelDim, width, 2 * modelDim + group * headDim, headDim),
                bias[(group * groupSize * headDim)..((group + 1) * groupSize * headDim)],
                bias[(modelDim + group * headDim)..(modelDim + (group + 1) * headDim)],
                bias[(2 * modelDim + group * headDim)..(2 * modelDim + (group + 1) * headDim)])).ToArray();
            return new Layer(groups, golden.Floats(prefix + "c_proj.weight"), golden.Floats(prefix + "c_proj.bias"), headCount, headDim);
        }
        else
        {
            // torch Linear: weight [out, in], y = x·Wᵀ; head h owns output rows h·dh, so a group's W is the
            // transpose of its row block.
            bool hasBias = golden.Metadata["bias"] == "true";
            var q = golden.Floats(prefix + "q_proj.weight");
            var k = golden.Floats(prefix + "k_proj.weight");
            var v = golden.Floats(prefix + "v_proj.weight");
            int queryWidth = groupSize * headDim;
            var groups = Enumerable.Range(0, kvHeads).Select(group => new HeadGroupWeights(shape,
                TransposedRows(q, modelDim, group * queryWidth, queryWidth),
                TransposedRows(k, modelDim, group * headDim, headDim),
                TransposedRows(v, modelDim, group * headDim, headDim),
                hasBias ? golden.Floats(prefix + "q_proj.bias")[(group * queryWidth)..((group + 1) * queryWidth)] : null,
                hasBias ? golden.Floats(prefix + "k_proj.bias")[(group * headDim)..((group + 1) * headDim)] : null,
                hasBias ? golden.Floats(prefix + "v_proj.bias")[(group * headDim)..((group + 1) * headDim)] : null)).ToArray();
            // o_proj: [D, Hq·dh] → W_O [Hq·dh, D]
            var output = TransposedRows(golden.Floats(prefix + "o_proj.weight"), headCount * headDim, 0, modelDim);
            return new Layer(groups, output, hasBias ? golden.Floats(prefix + "o_proj.bias") : null, headCount, headDim);
        }
    }

    /// <summary>Columns [first, first + count) of a [rows, width] matrix, as [rows, count].</summary>
    private static float[] Columns(float[] matrix, int rows, int width, int first, int count)
    {
        var result = new float[rows * count];
        for (int r = 0; r < rows; r++)
            matrix.AsSpan(r * width + first, count).CopyTo(result.AsSpan(r * count));
        return result;
    }

    /// <summary>Rows [first, first + count) of a [*, width] matrix, transposed to [width, count].</summary>
    private static float[] TransposedRows(float[] matrix, int width, int first, int count)
    {
        var result = new float[width * count];
        for (int r = 0; r < count; r++)
            for (int c = 0; c < width; c++)
                result[c * count + r] = matrix[(first + r) * width + c];
        return result;
    }
}
