namespace Headwise.Contracts;

/// <summary>
/// Puts a model's weights into the cluster. Both edges use it: the gRPC gateway and the SDK's Orleans
/// transport. The weights are staged beside the ones being served and switched in one commit (<see cref="StagedUpload"/>):
/// forwards keep their old answers until then, and a bad file, a failed write or a caller gone changes nothing.
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

    /// <summary>Stores weights that are already split per head group (e.g. seeded demo weights), as one upload.</summary>
    public static async Task<ModelDescription> StoreAsync(IGrainFactory grains, string model, IReadOnlyList<LayerWeights> layers,
        CancellationToken cancellationToken = default)
    {
        await using var upload = await StagedUpload.BeginAsync(grains, model, cancellationToken);
        await Task.WhenAll(layers.Select(layer => upload.StageLayerAsync(layer, cancellationToken)));
        return await upload.CommitAsync(cancellationToken);
    }
}
