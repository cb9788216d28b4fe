using System.Collections.Concurrent;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Orleans.Runtime;

namespace Headwise.Grains.Forward;

/// <summary>
/// A layer as this silo's coordinators see it: spec, b_O, and each group's silo and weights version; and the layer's
/// whole W_O once a pass that gathers Z has needed it.
/// </summary>
public sealed record LayerPlan(AttentionSpec Spec, float[] OutputBias, string[] HeadSilos, Guid[] HeadVersions)
{
    public SharedProjection? Projection { get; init; }
}

/// <summary>
/// The plans of the layers this silo coordinates, fetched once from each <see cref="ILayerGrain"/> and kept until a pass
/// shows them stale: a silo of the plan left membership, a head answered from another silo (then only its location is
/// updated), or a head answered with another weights version (an upload: the plan is fetched again).
/// </summary>
public sealed class LayerPlans(IGrainFactory grains, IClusterMembershipService membership)
{
    private readonly ConcurrentDictionary<string, LayerPlan> _plans = new(StringComparer.Ordinal);

    public async ValueTask<LayerPlan> Get(string layerKey)
    {
        if (_plans.TryGetValue(layerKey, out var plan) && AllActive(plan.HeadSilos)) return plan;
        var info = await grains.GetGrain<ILayerGrain>(layerKey).GetPlan();
        plan = new LayerPlan(info.Spec, info.OutputBias is { } bias ? FloatBytes.ToFloats(bias) : [], info.HeadSilos, info.HeadVersions);
        _plans[layerKey] = plan;
        return plan;
    }

    public void Forget(string layerKey) => _plans.TryRemove(layerKey, out _);

    /// <summary>Keeps the layer's W_O with the plan it was fetched for (not if the plan has changed since).</summary>
    public void Attach(string layerKey, LayerPlan plan, SharedProjection projection)
    {
        if (_plans.TryGetValue(layerKey, out var current) && current.HeadVersions.AsSpan().SequenceEqual(plan.HeadVersions))
            _plans.TryUpdate(layerKey, current with { Projection = projection }, current);
    }

    /// <summary>Heads found active elsewhere than the plan said: later passes go straight there.</summary>
    public void Moved(string layerKey, IEnumerable<SiloAssignment> moved)
    {
        var assignments = moved.ToArray();
        while (_plans.TryGetValue(layerKey, out var plan))
        {
            var silos = (string[])plan.HeadSilos.Clone();
            foreach (var assignment in assignments)
                foreach (int group in assignment.Groups)
                    if (group < silos.Length) silos[group] = assignment.Silo;
            if (_plans.TryUpdate(layerKey, plan with { HeadSilos = silos }, plan)) return;
        }
    }

    private bool AllActive(string[] silos)
    {
        var members = membership.CurrentSnapshot.Members;
        foreach (var silo in silos.Distinct())
            if (!members.Values.Any(m => m.Status == SiloStatus.Active && m.SiloAddress.Endpoint.ToString() == silo))
                return false;
        return true;
    }
}
