namespace Headwise.Contracts;

/// <summary>
/// Puts a model's weights into the cluster. Both edges use it: the gRPC gateway and the SDK's Orleans
/// transport. The weights are staged beside the ones being served and switched in one commit (<see cref="StagedUpload"/>):
/// forwards keep their old answers until then, and a bad file, a failed write or a caller gone changes nothing.
/// </summary>
public static class WeightUpload
{
    /// <summary>Parses a safetensors file in <paramref name="layout"/> and stores it as the model's weights.</summary>
    public static Task<ModelDescription> UploadAsync(IGrainFactory grains, string model, ReadOnlyMemory<byte> safetensors,
        WeightLayout layout, string prefix, CancellationToken cancellationToken = default) =>
        StreamAsync(grains, model, One(safetensors), layout, prefix, long.MaxValue, cancellationToken);

    /// <summary>
    /// Stores a safetensors file that arrives in chunks as the model's weights: each layer is staged as soon as its
    /// attention tensors are in (<see cref="StreamedSafetensors"/>), and the model switches to them once the file has
    /// ended whole. No chunk is kept longer than its layer needs it.
    /// </summary>
    /// <param name="maxBytes">The most bytes the file may have (RESOURCE_EXHAUSTED past it).</param>
    public static async Task<ModelDescription> StreamAsync(IGrainFactory grains, string model, IAsyncEnumerable<ReadOnlyMemory<byte>> chunks,
        WeightLayout layout, string prefix, long maxBytes, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model, "header.model");
        await using var upload = await StagedUpload.BeginAsync(grains, model, cancellationToken);
        var file = new StreamedSafetensors(upload.Spec, layout, prefix, maxBytes);
        await foreach (var chunk in chunks.WithCancellation(cancellationToken))
        {
            await upload.ProgressAsync(cancellationToken);
            foreach (var layer in file.Accept(chunk.Span))
                await upload.StageLayerAsync(layer, cancellationToken);
        }
        file.Finish();
        return await upload.CommitAsync(cancellationToken);
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> One(ReadOnlyMemory<byte> bytes)
    {
        await Task.CompletedTask;
        yield return bytes;
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
