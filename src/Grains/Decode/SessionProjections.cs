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

    /// <summary>The shared copy of <paramref name="projection"/>'s W_O and b_O for the layer, made on first use.</summary>
    public SharedProjection Get(string model, int layer, LayerProjection projection)
    {
        lock (_lock)
        {
            // b_O lives with the layer, not the heads: an upload that changed only it leaves the versions alike.
            var bias = projection.OutputBias is { } bytes ? FloatBytes.AsFloats(bytes) : [];
            if (_layers.TryGetValue((model, layer), out var weak) && weak.TryGetTarget(out var shared)
                && shared.HeadVersions.AsSpan().SequenceEqual(projection.HeadVersions)
                && shared.OutputBias.AsSpan().SequenceEqual(bias))
                return shared;
            shared = new SharedProjection(
                FloatBytes.ToFloats(projection.OutputWeights),
                bias.ToArray(),
                projection.HeadVersions);
            _layers[(model, layer)] = new WeakReference<SharedProjection>(shared);
            return shared;
        }
    }
}

/// <summary>A layer's W_O [Hq·dh × D], b_O [D] or empty, and the per-group weights versions they came from.</summary>
public sealed record SharedProjection(float[] OutputWeights, float[] OutputBias, Guid[] HeadVersions);
