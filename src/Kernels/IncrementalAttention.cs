using System.Buffers;
using System.Numerics.Tensors;

namespace Headwise.Kernels;

/// <summary>
/// Attention over keys and values that are already computed (a decode session's cache) and the path every kernel
/// takes when RoPE is on. Separate from <see cref="IHeadKernel.Attend"/> so the fused kernels stay untouched: the
/// projections go through the silo's kernel (<see cref="IHeadKernel.Project"/>, its GEMM), <see cref="Rotary"/>
/// rotates Q and K rows at their absolute positions, and the scores, softmax and weighted sum run here, one query
/// row at a time over the visible key range (a decode step has one query row per sequence, so there is nothing to tile).
/// </summary>
public static class IncrementalAttention
{
    /// <summary>New tokens from which a step into an empty cache takes the kernel's fused attention.</summary>
    public const int FusedPrefillTokens = 16;

    /// <summary>
    /// Whether a step of <paramref name="tokens"/> new rows into <paramref name="cache"/> takes the kernel's fused
    /// attention (see <see cref="Decode"/>) rather than the projections and a walk over the cache.
    /// </summary>
    public static bool TakesFusedPrefill(IHeadKernel kernel, Rotary rotary, KeyValueCache cache, int tokens) =>
        cache.Count == 0 && tokens >= FusedPrefillTokens && (!rotary.IsEnabled || (kernel.SupportsRotary && cache.Position == 0));

    /// <summary>
    /// One decode step for one sequence: projects the new tokens, appends their K and V to <paramref name="cache"/>
    /// and computes Z for them, causal over everything the cache has seen (bounded below by the window).
    /// </summary>
    public static void Decode(IHeadKernel kernel, HeadGroupWeights weights, AttentionOptions options, Rotary rotary,
        // x: [tokens, D]
        ReadOnlySpan<float> input, int tokens,
        KeyValueCache cache,
        // z: [tokens, g·dh]
        Span<float> output)
    {
        var shape = weights.Shape;
        if (cache.HeadDim != shape.HeadDim)
            throw new ArgumentException($"the cache holds rows of {cache.HeadDim}; the head group needs {shape.HeadDim}.", nameof(cache));
        if (input.Length != tokens * shape.ModelDim)
            throw new ArgumentException($"input has {input.Length} values; [tokens, D] needs {tokens * shape.ModelDim}.", nameof(input));
        if (output.Length != tokens * shape.QueryWidth)
            throw new ArgumentException($"output has {output.Length} values; [tokens, g·dh] needs {tokens * shape.QueryWidth}.", nameof(output));
        if (tokens == 0) return;

        int firstPosition = cache.Position;
        var buffer = ArrayPool<float>.Shared.Rent(tokens * (shape.QueryWidth + 2 * shape.HeadDim));
        try
        {
            var queries = buffer.AsSpan(0, tokens * shape.QueryWidth);                           // [tokens, g·dh]
            var keys = buffer.AsSpan(queries.Length, tokens * shape.HeadDim);                   // [tokens, dh]
            var values = buffer.AsSpan(queries.Length + keys.Length, tokens * shape.HeadDim);   // [tokens, dh]
            if (TakesFusedPrefill(kernel, rotary, cache, tokens))
            {
                // A prefill (or a re-fill) into an empty cache sees only its own tokens, and causal and window masks
                // depend on distances only: the kernel's fused, tiled attention gives Z at forward-pass speed, and
                // the cache needs just K and V (a query row at a time over the cache was 2.5× a forward at 1024).
                // The kernel's RoPE counts positions from 0, so a RoPE re-fill from a later position stays below.
                // The kernel hands back K and V from its own projection (the SIMD kernel's one GEMM), rather than
                // projecting them a second time: that was 5/3 of a forward pass's projections, a prefill 1.5× a forward.
                kernel.AttendKeepingKeys(input, tokens, weights, options with { Causal = true, Rotary = rotary }, output, keys, values);
                cache.Append(keys, values, tokens);
                cache.TrimToWindow(options.Window);
                return;
            }
            Project(kernel, weights, input, tokens, queries, keys, values);
            rotary.Apply(queries, tokens, shape.QueryHeads, shape.HeadDim, firstPosition);
            rotary.Apply(keys, tokens, 1, shape.HeadDim, firstPosition);
            cache.Append(keys, values, tokens);

            AttendCached(queries, tokens, firstPosition, cache, shape, options with { Causal = true }, output);
            cache.TrimToWindow(options.Window);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// The same contract as <see cref="IHeadKernel.Attend"/> with RoPE applied to Q and K at positions 0 … tokens − 1
    /// of each sequence.
    /// </summary>
    public static void Forward(IHeadKernel kernel,
        // x: [batch, tokens, D]
        ReadOnlySpan<float> input, int batch, int tokens,
        // [batch], or empty for all
        ReadOnlySpan<int> lengths,
        HeadGroupWeights weights, AttentionOptions options, Rotary rotary,
        // z: [batch, tokens, g·dh]
        Span<float> output,
        // [batch, g, tokens, tokens], or empty
        Span<float> attention)
    {
        KernelArguments.CheckAttend(input, batch, tokens, lengths, weights, output, attention);
        var shape = weights.Shape;
        var buffer = ArrayPool<float>.Shared.Rent(Math.Max(1, tokens * (shape.QueryWidth + 2 * shape.HeadDim)));
        try
        {
            var queries = buffer.AsSpan(0, tokens * shape.QueryWidth);
            var keys = buffer.AsSpan(queries.Length, tokens * shape.HeadDim);
            var values = buffer.AsSpan(queries.Length + keys.Length, tokens * shape.HeadDim);
            for (int sequence = 0; sequence < batch; sequence++)
            {
                Project(kernel, weights, input.Slice(sequence * tokens * shape.ModelDim, tokens * shape.ModelDim), tokens, queries, keys, values);
                rotary.Apply(queries, tokens, shape.QueryHeads, shape.HeadDim, 0);
                rotary.Apply(keys, tokens, 1, shape.HeadDim, 0);
                int length = lengths.IsEmpty ? tokens : lengths[sequence];
                int probabilities = shape.QueryHeads * tokens * tokens;
                Attend(queries, tokens, 0, keys, values, tokens, 0, shape, options, length,
                    output.Slice(sequence * tokens * shape.QueryWidth, tokens * shape.QueryWidth),
                    attention.IsEmpty ? Span<float>.Empty : attention.Slice(sequence * probabilities, probabilities));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Z for query rows at absolute positions firstQuery … over key rows at positions firstKey …; key j is visible to
    /// query i iff <see cref="AttentionOptions.IsVisible"/>(i, j, length) in absolute positions. No visible key gives zeros.
    /// </summary>
    public static void Attend(
        // q: [tokens, g·dh]
        ReadOnlySpan<float> queries, int tokens, int firstQuery,
        // K, V: [keyCount, dh]
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int keyCount, int firstKey,
        HeadGroupShape shape, AttentionOptions options, int length,
        // z: [tokens, g·dh]
        Span<float> output,
        // [g, tokens, keyCount] probabilities, or empty
        Span<float> attention)
    {
        int headDim = shape.HeadDim, queryWidth = shape.QueryWidth;
        var scores = ArrayPool<float>.Shared.Rent(Math.Max(1, keyCount));
        try
        {
            if (!attention.IsEmpty) attention.Clear();
            for (int query = 0; query < tokens; query++)
            {
                int position = firstQuery + query;
                var (start, end) = options.VisibleKeyRange(position, length);
                start = Math.Max(start, firstKey) - firstKey;
                end = Math.Min(end, firstKey + keyCount) - firstKey;
                for (int head = 0; head < shape.QueryHeads; head++)
                {
                    var z = output.Slice(query * queryWidth + head * headDim, headDim);
                    z.Clear();
                    if (end <= start) continue;
                    var q = queries.Slice(query * queryWidth + head * headDim, headDim);

                    float max = float.NegativeInfinity;
                    for (int key = start; key < end; key++)
                    {
                        float score = TensorPrimitives.Dot(q, keys.Slice(key * headDim, headDim)) * options.Scale;
                        scores[key] = score;
                        max = Math.Max(max, score);
                    }
                    double sum = 0;
                    for (int key = start; key < end; key++)
                    {
                        float weight = MathF.Exp(scores[key] - max);
                        scores[key] = weight;
                        sum += weight;
                    }
                    float inverse = (float)(1 / sum);
                    for (int key = start; key < end; key++)
                    {
                        float probability = scores[key] * inverse;
                        TensorPrimitives.MultiplyAdd(values.Slice(key * headDim, headDim), probability, z, z);
                        if (!attention.IsEmpty) attention[(head * tokens + query) * keyCount + key] = probability;
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scores);
        }
    }

    /// <summary>
    /// <see cref="Attend"/> over a cache, for queries at absolute positions firstQuery …: with K and V in tiles of
    /// [dh, 16] each score row is dh multiply-adds along the visible keys and each output value one dot product, so the
    /// work runs 16 keys per vector however few the queries; both run 8 dimensions per pass over the tiles that hold a
    /// visible key (<see cref="CachedAttentionRows"/>).
    /// </summary>
    internal static unsafe void AttendCached(
        // q: [tokens, g·dh]
        ReadOnlySpan<float> queries, int tokens, int firstQuery,
        KeyValueCache cache, HeadGroupShape shape, AttentionOptions options,
        // z: [tokens, g·dh]
        Span<float> output)
    {
        const int tile = KeyValueCache.TileTokens;
        int headDim = shape.HeadDim, queryWidth = shape.QueryWidth, firstKey = cache.FirstPosition;
        if (queries.Length < tokens * queryWidth || output.Length < tokens * queryWidth)
            throw new ArgumentException($"queries and output need [tokens, g·dh] = {tokens * queryWidth} values; got {queries.Length} and {output.Length}.");
        var width = VectorWidths.Best;
        int stride = cache.TileStride;
        var buffer = ArrayPool<float>.Shared.Rent(Math.Max(tile, (cache.Count + tile - 1) / tile * tile));
        try
        {
            fixed (float* keys = cache.TiledKeys, values = cache.TiledValues, q = queries, z = output, scores = buffer)
            {
                for (int query = 0; query < tokens; query++)
                {
                    var (start, end) = options.VisibleKeyRange(firstQuery + query, int.MaxValue);
                    start = Math.Max(start, firstKey) - firstKey;
                    end = Math.Min(end, firstKey + cache.Count) - firstKey;
                    int firstTile = start / tile, tiles = (end + tile - 1) / tile - firstTile, lead = start - firstTile * tile;
                    for (int head = 0; head < shape.QueryHeads; head++)
                    {
                        int offset = query * queryWidth + head * headDim;
                        if (end <= start)
                        {
                            output.Slice(offset, headDim).Clear();
                            continue;
                        }
                        int count = end - start;
                        CachedAttentionRows.Scores(width, q + offset, options.Scale, keys + firstTile * stride, headDim, tiles, scores);
                        var row = buffer.AsSpan(lead, count);
                        TensorPrimitives.Subtract(row, TensorPrimitives.Max(row), row);
                        TensorPrimitives.Exp(row, row);
                        // Normalising the dh outputs instead of the scores saves a pass over every key.
                        float inverse = 1 / TensorPrimitives.Sum(row);
                        // The tiles' lanes outside the visible keys weigh nothing.
                        buffer.AsSpan(0, lead).Clear();
                        buffer.AsSpan(lead + count, tiles * tile - lead - count).Clear();
                        CachedAttentionRows.WeightedSum(width, scores, tiles, values + firstTile * stride, headDim, inverse, z + offset);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    internal static void Project(IHeadKernel kernel, HeadGroupWeights weights,
        // x: [tokens, D]
        ReadOnlySpan<float> input, int tokens,
        // q: [tokens, g·dh], k and v: [tokens, dh]
        Span<float> queries, Span<float> keys, Span<float> values)
    {
        var shape = weights.Shape;
        kernel.Project(input, tokens, shape.ModelDim, weights.Query, shape.QueryWidth, weights.QueryBias, queries);
        kernel.Project(input, tokens, shape.ModelDim, weights.Key, shape.HeadDim, weights.KeyBias, keys);
        kernel.Project(input, tokens, shape.ModelDim, weights.Value, shape.HeadDim, weights.ValueBias, values);
    }
}
