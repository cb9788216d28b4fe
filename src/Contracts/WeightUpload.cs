namespace Headwise.Contracts;

/// <summary>
/// Puts a model's weights into the cluster. Both edges use it: the gRPC gateway and the SDK's Orleans
/// transport. Everything is parsed and checked before the first head is written, so a bad file changes nothing.
/// </summary>
public static class WeightUpload
{
    /// <summary>Parses a safetensors file in <paramref name="layout"/> and stores it as the model's weights.</summary>
    public static async Task<ModelDescription> UploadAsync(IGrainFactory grains, string model, ReadOnlyMemory<byte> safetensors,
        WeightLayout layout, string prefix, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model, "header.model");
        var catalog = grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog);
        var description = await catalog.Get(model).WaitAsync(cancellationToken);
        var file = SafetensorsFile.Parse(safetensors);
        var layers = WeightImporter.Import(file, description.Spec, layout, prefix);
        return await StoreAsync(grains, model, layers, cancellationToken);
    }

    /// <summary>Stores weights that are already split per head group (e.g. seeded demo weights).</summary>
    public static async Task<ModelDescription> StoreAsync(IGrainFactory grains, string model, IReadOnlyList<LayerWeights> layers,
        CancellationToken cancellationToken = default)
    {
        // Layers in parallel, a layer's groups one after another: one group's weights are the largest message
        // (W_Q, W_K, W_V and W_O rows), which keeps a 4096-wide model's messages small.
        await Task.WhenAll(layers.Select(async layerWeights =>
        {
            var layer = grains.GetGrain<ILayerGrain>(GrainKeys.Layer(model, layerWeights.Layer));
            foreach (var group in layerWeights.Groups)
                await layer.LoadGroup(group).WaitAsync(cancellationToken);
            await layer.CompleteLoad(layerWeights.OutputBias).WaitAsync(cancellationToken);
        }));
        return await grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).MarkReady(model).WaitAsync(cancellationToken);
    }
}
