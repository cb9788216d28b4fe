using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>
/// The cluster's one list of models (key "catalog"). The gateway and Orleans clients call it to create, find,
/// list and delete models; it initialises and deletes the models' <see cref="LayerGrain"/>s.
/// </summary>
public sealed class ModelCatalogGrain(
    [PersistentState("catalog", StorageNames.Weights)] IPersistentState<CatalogState> state) : Grain, IModelCatalogGrain
{
    public async Task<ModelDescription> Create(string name, AttentionSpec spec)
    {
        ModelName.Validate(name);
        var resolved = spec.Resolve();
        if (state.State.Models.ContainsKey(name))
            throw new HeadwiseException(ErrorCode.AlreadyExists, $"name '{name}': a model of that name exists already.");

        await Task.WhenAll(Enumerable.Range(0, resolved.LayerCount).Select(l => Layer(name, l).Initialize(resolved)));
        var entry = new CatalogEntry { Spec = resolved };
        state.State.Models[name] = entry;
        await state.WriteStateAsync();
        return Describe(name, entry);
    }

    public async Task<ModelDescription> Get(string name)
    {
        var entry = Require(name);
        var placements = await Task.WhenAll(Enumerable.Range(0, entry.Spec.LayerCount).Select(l => Layer(name, l).Locate()));
        return Describe(name, entry) with { Heads = placements.SelectMany(p => p).ToArray() };
    }

    public Task<ModelDescription[]> List() =>
        Task.FromResult(state.State.Models.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => Describe(m.Key, m.Value)).ToArray());

    public async Task Delete(string name)
    {
        var entry = Require(name);
        // Forget the name first: a half-deleted model must not look usable.
        state.State.Models.Remove(name);
        await state.WriteStateAsync();
        await Task.WhenAll(Enumerable.Range(0, entry.Spec.LayerCount).Select(l => Layer(name, l).Delete()));
    }

    public async Task<int> Rebalance(string? name)
    {
        var models = name is null ? state.State.Models.ToList() : [new(name, Require(name))];
        var moved = await Task.WhenAll(models.SelectMany(m =>
            Enumerable.Range(0, m.Value.Spec.LayerCount).Select(l => Layer(m.Key, l).Rebalance())));
        return moved.Sum();
    }

    public async Task<ModelDescription> MarkReady(string name)
    {
        var entry = Require(name);
        entry.Ready = true;
        await state.WriteStateAsync();
        return await Get(name);
    }

    private CatalogEntry Require(string name) =>
        state.State.Models.TryGetValue(name, out var entry)
            ? entry
            : throw new HeadwiseException(ErrorCode.NotFound, $"model '{name}' not found.");

    private ILayerGrain Layer(string model, int layer) => GrainFactory.GetGrain<ILayerGrain>(GrainKeys.Layer(model, layer));

    private static ModelDescription Describe(string name, CatalogEntry entry) =>
        new() { Name = name, Spec = entry.Spec, Ready = entry.Ready };
}
