using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>Imports a Hugging Face checkpoint directory's attention into a model, over any <see cref="IAttentionClient"/> transport.</summary>
public static class HuggingFaceImport
{
    /// <summary>
    /// Reads <paramref name="directory"/>'s config.json (GPT-2, Llama, Mistral, Qwen2, OLMo, Phi-3), creates
    /// <paramref name="model"/> with the spec it implies (or uses the model if it exists with that very spec), and uploads
    /// the chosen layers' attention tensors, and nothing else, in one atomic upload. Shards are followed through
    /// model.safetensors.index.json and memory-mapped; F16 and BF16 tensors are widened to float32 on the way, and Phi-3's
    /// fused qkv_proj is split into q, k and v.
    /// </summary>
    /// <param name="client">Any transport.</param>
    /// <param name="directory">The checkpoint directory: config.json and model.safetensors or model.safetensors.index.json with its shards.</param>
    /// <param name="model">The model to create or fill.</param>
    /// <param name="options">Which layers (default all); the model holds them renumbered 0 … n − 1 in ascending order.</param>
    /// <param name="progress">Bytes and layers handed to the upload so far; null for none.</param>
    /// <param name="cancellationToken">Cancels the import; the upload then changes nothing.</param>
    /// <returns>The model after the upload's commit.</returns>
    /// <exception cref="HeadwiseException">
    /// InvalidArgument: an architecture or a config setting Headwise does not compute (naming the config.json field), a
    /// missing shard, a tensor missing from the index or the shard, or of another shape than config.json implies, chosen layers
    /// with different sliding windows. AlreadyExists: the model exists with another spec (the differing field is named). Any
    /// error of <see cref="IAttentionClient.CreateModelAsync"/> and <see cref="IAttentionClient.UploadWeightsAsync"/>.
    /// </exception>
    public static async Task<ModelDescription> ImportHuggingFaceAsync(this IAttentionClient client, string directory, string model,
        HuggingFaceImportOptions? options = null, IProgress<ImportProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(model);
        var config = HuggingFaceConfig.Read(directory);
        int[] layers = ChosenLayers(options?.Layers, config.Spec.LayerCount);
        var spec = (config.Spec with { LayerCount = layers.Length, Window = CommonWindow(config, layers) }).Resolve();

        // Everything is located and checked before the model is touched: a bad checkpoint creates nothing.
        var shards = HuggingFaceShards.Open(directory);
        var slices = new List<ShardSlice>();
        var layerOf = new List<int>();
        string fields = config.Describe();
        for (int target = 0; target < layers.Length; target++)
        {
            var (send, forbidden) = AttentionTensorPlan.For(config, layers[target], target, shards.Contains);
            foreach (string name in forbidden.Where(shards.Contains))
                throw new HeadwiseException(ErrorCode.InvalidArgument,
                    $"tensor '{EchoedValue.Of(name)}' is in the checkpoint, but config.json (model_type '{config.ModelType}'{Why(name)}) implies no such tensor; " +
                    "importing without it would not compute the checkpoint's attention.");
            foreach (var plan in send)
            {
                slices.Add(shards.Locate(plan, fields));
                layerOf.Add(target);
            }
        }

        await EnsureModelAsync(client, model, spec, cancellationToken);
        await using var upload = new AttentionUploadStream(slices, [.. layerOf], layers.Length, progress);
        string prefix = config.Layout == WeightLayout.Gpt2 ? AttentionTensorPlan.Gpt2Prefix : AttentionTensorPlan.LinearPrefix;
        return await client.UploadWeightsAsync(model, upload, config.Layout, prefix, cancellationToken);
    }

    /// <summary>The config field that rules a tensor out, for the message.</summary>
    private static string Why(string tensor) =>
        tensor.EndsWith("_norm.weight", StringComparison.Ordinal) ? ": q/k norms inside attention are not computed"
        : tensor.EndsWith("o_proj.bias", StringComparison.Ordinal) ? ", attention_bias; Qwen2 has no o_proj bias"
        : ", attention_bias false or absent";

    /// <summary>The chosen layers, ascending; all when none are given.</summary>
    private static int[] ChosenLayers(IReadOnlyList<int>? chosen, int layerCount)
    {
        if (chosen is null) return Enumerable.Range(0, layerCount).ToArray();
        if (chosen.Count == 0)
            throw new HeadwiseException(ErrorCode.InvalidArgument, "layers is empty; give at least one layer, or none to import all.");
        foreach (int layer in chosen)
            if (layer < 0 || layer >= layerCount)
                throw new HeadwiseException(ErrorCode.InvalidArgument, $"layers: {layer} is not a layer of the checkpoint, which has layers 0..{layerCount - 1}.");
        var distinct = chosen.Distinct().Order().ToArray();
        if (distinct.Length != chosen.Count)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"layers: {chosen.GroupBy(l => l).First(g => g.Count() > 1).Key} is given twice.");
        return distinct;
    }

    /// <summary>A spec has one window for all its layers: the chosen layers must agree (Qwen2 slides only from max_window_layers on).</summary>
    private static int CommonWindow(HuggingFaceConfig config, int[] layers)
    {
        int window = config.LayerWindows[layers[0]];
        foreach (int layer in layers)
            if (config.LayerWindows[layer] != window)
                throw new HeadwiseException(ErrorCode.InvalidArgument,
                    $"layers: checkpoint layer {layers[0]} has sliding window {Window(config.LayerWindows[layers[0]])} and layer {layer} {Window(config.LayerWindows[layer])} " +
                    "(config.json sliding_window, use_sliding_window, max_window_layers, layer_types); a Headwise model has one window for all its layers, so import them as separate models.");
        return window;
    }

    private static string Window(int window) => window == 0 ? "none" : window.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Creates the model; one that exists already is used only when its spec is this very spec.</summary>
    private static async Task EnsureModelAsync(IAttentionClient client, string model, AttentionSpec spec, CancellationToken cancellationToken)
    {
        ModelDescription existing;
        try
        {
            existing = await client.GetModelAsync(model, cancellationToken);
        }
        catch (HeadwiseException e) when (e.Code == ErrorCode.NotFound)
        {
            await client.CreateModelAsync(model, spec, cancellationToken);
            return;
        }
        string? difference = SpecDifference(existing.Spec.Resolve(), spec);
        if (difference is not null)
            throw new HeadwiseException(ErrorCode.AlreadyExists,
                $"model '{model}' exists with another spec ({difference}); delete it or import under another name.");
    }

    /// <summary>The first field where the existing spec differs from the checkpoint's, as "field has X, the checkpoint Y".</summary>
    private static string? SpecDifference(AttentionSpec existing, AttentionSpec wanted)
    {
        (string Field, object? Has, object? Wants)[] fields =
        [
            ("model_dim", existing.ModelDim, wanted.ModelDim), ("head_count", existing.HeadCount, wanted.HeadCount),
            ("kv_head_count", existing.KvHeadCount, wanted.KvHeadCount), ("head_dim", existing.HeadDim, wanted.HeadDim),
            ("layer_count", existing.LayerCount, wanted.LayerCount), ("bias", existing.Bias, wanted.Bias),
            ("output_bias", existing.HasOutputBias, wanted.HasOutputBias), ("scale", existing.Scale, wanted.Scale),
            ("window", existing.Window, wanted.Window), ("rope_theta", existing.RopeTheta, wanted.RopeTheta),
            ("rope_dim", existing.RopeDim, wanted.RopeDim), ("rope_scaling", existing.RopeScaling, wanted.RopeScaling),
        ];
        foreach (var (field, has, wants) in fields)
            if (!Equals(has, wants))
                return $"spec.{field} is {has?.ToString() ?? "none"}, the checkpoint's is {wants?.ToString() ?? "none"}";
        return null;
    }
}
