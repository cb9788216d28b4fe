namespace Headwise.Kernels;

/// <summary>
/// Version 1, the oracle: attention written as the formulas read, in plain loops, accumulating in float64
/// everywhere (projections, scores, softmax, weighted sum, output projection). Every faster kernel is
/// tested against it, so it stays simple rather than fast, and it never goes away.
/// </summary>
public sealed class ReferenceKernel : IHeadKernel
{
    public string Name => "reference";

    public bool SupportsRotary => true;

    public void Attend(
        // x: [batch, tokens, D]
        ReadOnlySpan<float> input, int batch, int tokens,
        // [batch], or empty when every sequence is full
        ReadOnlySpan<int> lengths,
        HeadGroupWeights weights, AttentionOptions options,
        // z: [batch, tokens, g·dh]
        Span<float> output,
        // [batch, g, tokens, tokens], or empty
        Span<float> attention)
    {
        KernelArguments.CheckAttend(input, batch, tokens, lengths, weights, output, attention);
        var shape = weights.Shape;
        int modelDim = shape.ModelDim, headDim = shape.HeadDim, queryWidth = shape.QueryWidth;

        for (int sequence = 0; sequence < batch; sequence++)
        {
            int length = lengths.IsEmpty ? tokens : lengths[sequence];
            var x = input.Slice(sequence * tokens * modelDim, tokens * modelDim);
            // K and V once for the group; every query head of the group reads the same ones.
            double[] queries = Linear(x, tokens, modelDim, weights.Query, queryWidth, weights.QueryBias); // [tokens, g·dh]
            double[] keys = Linear(x, tokens, modelDim, weights.Key, headDim, weights.KeyBias);            // [tokens, dh]
            double[] values = Linear(x, tokens, modelDim, weights.Value, headDim, weights.ValueBias);      // [tokens, dh]
            if (options.Rotary.IsEnabled)
            {
                Rotate(queries, tokens, shape.QueryHeads, headDim, options.Rotary);
                Rotate(keys, tokens, 1, headDim, options.Rotary);
            }

            for (int head = 0; head < shape.QueryHeads; head++)
            {
                for (int query = 0; query < tokens; query++)
                {
                    // scores[key] = Q_head[query] · K[key] · scale, for visible keys only
                    var scores = new double[tokens];
                    double max = double.NegativeInfinity;
                    for (int key = 0; key < tokens; key++)
                    {
                        if (!options.IsVisible(query, key, length)) continue;
                        double dot = 0;
                        for (int d = 0; d < headDim; d++)
                            dot += queries[query * queryWidth + head * headDim + d] * keys[key * headDim + d];
                        scores[key] = dot * options.Scale;
                        max = Math.Max(max, scores[key]);
                    }

                    // probabilities[key] = softmax over the visible keys; masked keys stay exactly 0,
                    // and a row with no visible key stays all zeros.
                    var probabilities = new double[tokens];
                    if (!double.IsNegativeInfinity(max))
                    {
                        double sum = 0;
                        for (int key = 0; key < tokens; key++)
                        {
                            if (!options.IsVisible(query, key, length)) continue;
                            probabilities[key] = Math.Exp(scores[key] - max);
                            sum += probabilities[key];
                        }
                        for (int key = 0; key < tokens; key++)
                            probabilities[key] /= sum;
                    }

                    // z[query, head] = Σ_key probabilities[key] · V[key]
                    for (int d = 0; d < headDim; d++)
                    {
                        double z = 0;
                        for (int key = 0; key < tokens; key++)
                            z += probabilities[key] * values[key * headDim + d];
                        output[(sequence * tokens + query) * queryWidth + head * headDim + d] = (float)z;
                    }

                    if (!attention.IsEmpty)
                    {
                        int row = ((sequence * shape.QueryHeads + head) * tokens + query) * tokens;
                        for (int key = 0; key < tokens; key++)
                            attention[row + key] = (float)probabilities[key];
                    }
                }
            }
        }
    }

    public void Project(
        // x: [rows, inner]
        ReadOnlySpan<float> input, int rows, int inner,
        // W: [inner, outer]
        ReadOnlySpan<float> weights, int outer,
        // b: [outer], or empty
        ReadOnlySpan<float> bias,
        // y: [rows, outer]
        Span<float> output)
    {
        KernelArguments.CheckProject(input, rows, inner, weights, outer, bias, output);
        double[] y = Linear(input, rows, inner, weights, outer, bias);
        for (int i = 0; i < y.Length; i++)
            output[i] = (float)y[i];
    }

    /// <summary>RoPE in float64 on rows [tokens, heads·dh] at positions 0 … tokens − 1 (see <see cref="Rotary"/>).</summary>
    private static void Rotate(double[] rows, int tokens, int heads, int headDim, Rotary rotary)
    {
        int half = rotary.Dim / 2;
        double[] inverseFrequency = rotary.InverseFrequencies();
        for (int token = 0; token < tokens; token++)
            for (int i = 0; i < half; i++)
            {
                double angle = token * inverseFrequency[i];
                double cos = Math.Cos(angle), sin = Math.Sin(angle);
                for (int head = 0; head < heads; head++)
                {
                    int at = (token * heads + head) * headDim + i;
                    double a = rows[at], b = rows[at + half];
                    rows[at] = a * cos - b * sin;
                    rows[at + half] = b * cos + a * sin;
                }
            }
    }

    /// <summary>y = x·W + b in float64.</summary>
    private static double[] Linear(
        // x: [rows, inner]
        ReadOnlySpan<float> input, int rows, int inner,
        // W: [inner, outer]
        ReadOnlySpan<float> weights, int outer,
        // b: [outer], or empty
        ReadOnlySpan<float> bias)
    {
        var y = new double[rows * outer]; // [rows, outer]
        for (int row = 0; row < rows; row++)
        {
            for (int column = 0; column < outer; column++)
            {
                double sum = bias.IsEmpty ? 0 : bias[column];
                for (int k = 0; k < inner; k++)
                    sum += (double)input[row * inner + k] * weights[k * outer + column];
                y[row * outer + column] = sum;
            }
        }
        return y;
    }
}
