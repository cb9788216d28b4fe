using System.Collections.Concurrent;
using Headwise.Contracts;

namespace Headwise.Silo.Gateway;

/// <summary>
/// How many layers each model has, as this silo's gateway last read the catalog: a Forward or OpenSession to a model or
/// layer that does not exist is answered NOT_FOUND here, without activating a coordinator, layer or head grain for it
/// (a flood of made-up layer indices would otherwise activate a grain per index). A miss reads the catalog's listing
/// again, which activates nothing, so a model created through another silo a moment ago is found.
/// </summary>
internal sealed class ModelLayers(IGrainFactory grains)
{
    private readonly ConcurrentDictionary<string, int> _layerCounts = new(StringComparer.Ordinal);

    /// <summary>Returns when <paramref name="layer"/> of <paramref name="model"/> exists; NOT_FOUND naming it otherwise.</summary>
    public async ValueTask Require(string model, int layer)
    {
        if (_layerCounts.TryGetValue(model, out int known) && layer >= 0 && layer < known) return;
        var models = await grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).List();
        foreach (string gone in _layerCounts.Keys.Except(models.Select(m => m.Name))) _layerCounts.TryRemove(gone, out _);
        foreach (var description in models) _layerCounts[description.Name] = description.Spec.LayerCount;

        if (!_layerCounts.TryGetValue(model, out int count))
            throw new HeadwiseException(ErrorCode.NotFound, $"model '{model}' not found.");
        if (layer < 0 || layer >= count)
            throw new HeadwiseException(ErrorCode.NotFound, $"layer {layer} not found; model '{model}' has layers 0..{count - 1}.");
    }

    /// <summary>Drops what is known of <paramref name="model"/> when a grain said it is gone (deleted through another
    /// silo), so the next call asks the catalog again instead of reaching the grains.</summary>
    public void Forget(string model) => _layerCounts.TryRemove(model, out _);
}
