using Headwise.Contracts;

namespace Headwise.Grains.Decode;

/// <summary>
/// The W_O and b_O of the layers that this silo's decode sessions use, one copy per layer and weights version
/// however many sessions share it: a session keeps W_O for as long as it lives (2.4 MB for GPT-2 small, 64 MB for a
/// 4096-wide layer), so a copy per session would grow with the sessions and outside every byte cap. A copy lives as
/// long as some session holds it (weak references), and a re-upload's new versions get a copy of their own.
/// </summary>
public sealed class SessionProjections
{
    private readonly Dictionary<(string Model, int Layer), WeakReference<SharedProjection>> _layers = [];
    private readonly Lock _lock = new();

    /// <summary>
    /// The layer's spec and head versions from its grain, and the shared copy of its W_O and b_O. The grain sends W_O
    /// only when this silo holds no copy of the same head versions: opening a session no longer moves W_O.
    /// </summary>
    public async Task<(LayerProjection Layer, SharedProjection Shared)> Fetch(IGrainFactory grains, string model, int layer)
    {
        // Held by this local across the call, so the copy the grain is told about cannot be collected meanwhile.
        var held = Held(model, layer);
        var layerGrain = grains.GetGrain<ILayerGrain>(GrainKeys.Layer(model, layer));
        var projection = held is null ? await layerGrain.GetProjection() : await layerGrain.GetProjectionUnlessHeld(held.HeadVersions);
        return (projection, Get(model, layer, projection, held));
    }

    /// <summary>The shared copy of <paramref name="projection"/>'s W_O and b_O for the layer, made on first use.</summary>
    /// <param name="held">The copy whose versions the layer was told, required when the layer left W_O out.</param>
    public SharedProjection Get(string model, int layer, LayerProjection projection, SharedProjection? held = null)
    {
        lock (_lock)
        {
            // b_O lives with the layer, not the heads: an upload that changed only it leaves the versions alike.
            var bias = projection.OutputBias is { } bytes ? FloatBytes.AsFloats(bytes) : [];
            if (_layers.TryGetValue((model, layer), out var weak) && weak.TryGetTarget(out var shared)
                && shared.HeadVersions.AsSpan().SequenceEqual(projection.HeadVersions)
                && shared.OutputBias.AsSpan().SequenceEqual(bias))
                return shared;
            float[] weights;
            if (projection.OutputWeightsHeld)
            {
                // Rows of W_O come from the head groups, so the same versions are the same W_O.
                if (held is null || !held.HeadVersions.AsSpan().SequenceEqual(projection.HeadVersions))
                    throw new InvalidOperationException(
                        $"layer {model}/{layer} left W_O out for head versions this silo does not hold.");
                weights = held.OutputWeights;
            }
            else
            {
                weights = FloatBytes.ToFloats(projection.OutputWeights);
            }
            shared = new SharedProjection(weights, bias.ToArray(), projection.HeadVersions);
            _layers[(model, layer)] = new WeakReference<SharedProjection>(shared);
            return shared;
        }
    }

    // The live copy of the layer's W_O, if any session (or plan) of this silo still holds one.
    private SharedProjection? Held(string model, int layer)
    {
        lock (_lock)
            return _layers.TryGetValue((model, layer), out var weak) && weak.TryGetTarget(out var shared) ? shared : null;
    }
}

/// <summary>A layer's W_O [Hq·dh × D], b_O [D] or empty, and the per-group weights versions they came from.</summary>
public sealed record SharedProjection(float[] OutputWeights, float[] OutputBias, Guid[] HeadVersions);
