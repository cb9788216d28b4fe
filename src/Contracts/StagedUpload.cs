namespace Headwise.Contracts;

/// <summary>
/// One upload of a model's weights in progress. Layers are staged as they come (beside the weights being served, which
/// go on answering), then <see cref="CommitAsync"/> switches the whole model in one catalog write. Disposed without a
/// commit — a bad file, a failed storage write, a caller gone — it aborts, and the old weights are all that remains.
/// An uploader that dies instead leaves its lease to expire (<see cref="IModelCatalogGrain.BeginUpload"/>).
/// </summary>
public sealed class StagedUpload : IAsyncDisposable
{
    private readonly IGrainFactory _grains;
    private readonly List<Task> _calls = [];
    private bool _finished;

    private StagedUpload(IGrainFactory grains, string model, Guid id, AttentionSpec spec)
    {
        _grains = grains;
        Model = model;
        Id = id;
        Spec = spec;
    }

    public string Model { get; }
    public Guid Id { get; }
    /// <summary>The model's resolved spec, as the catalog holds it.</summary>
    public AttentionSpec Spec { get; }

    private IModelCatalogGrain Catalog => _grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog);

    public static async Task<StagedUpload> BeginAsync(IGrainFactory grains, string model, CancellationToken cancellationToken = default)
    {
        var catalog = grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog);
        var description = await catalog.Get(model).WaitAsync(cancellationToken);
        var id = await catalog.BeginUpload(model).WaitAsync(cancellationToken);
        return new StagedUpload(grains, model, id, description.Spec);
    }

    /// <summary>Stages one layer: its groups one after another (a group is the largest message), then b_O.</summary>
    public async Task StageLayerAsync(LayerWeights weights, CancellationToken cancellationToken = default)
    {
        var layer = _grains.GetGrain<ILayerGrain>(GrainKeys.Layer(Model, weights.Layer));
        // An upload the catalog has closed (its lease ran out) stages nothing more: what it staged now would stay.
        await Call(Catalog.TouchUpload(Model, Id), cancellationToken);
        foreach (var group in weights.Groups)
            await Call(layer.StageGroup(Id, group), cancellationToken);
        await Call(layer.StageLayer(Id, weights.OutputBias), cancellationToken);
        await Call(Catalog.TouchUpload(Model, Id), cancellationToken);
    }

    // A caller that gives up stops waiting at once, but the grain call goes on: the abort waits for it (see AbortAsync).
    private async Task Call(Task call, CancellationToken cancellationToken)
    {
        lock (_calls) _calls.Add(call);
        await call.WaitAsync(cancellationToken);
        lock (_calls) _calls.Remove(call);
    }

    private long _touched = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>Tells the catalog the upload is making progress (bytes arriving), at most once a second: a layer that
    /// takes longer than the lease to arrive is not taken for an abandoned upload.</summary>
    public async Task ProgressAsync(CancellationToken cancellationToken = default)
    {
        if (System.Diagnostics.Stopwatch.GetElapsedTime(_touched) < TimeSpan.FromSeconds(1)) return;
        _touched = System.Diagnostics.Stopwatch.GetTimestamp();
        await Call(Catalog.TouchUpload(Model, Id), cancellationToken);
    }

    /// <summary>Switches the model to this upload's weights; the answer describes the model after the switch.</summary>
    public async Task<ModelDescription> CommitAsync(CancellationToken cancellationToken = default)
    {
        var commit = Catalog.CommitUpload(Model, Id);
        lock (_calls) _calls.Add(commit);
        var description = await commit.WaitAsync(cancellationToken);
        _finished = true;
        return description;
    }

    /// <summary>
    /// Drops what was staged. The calls a caller gave up on are waited for first (at most 30 s): one still on its way
    /// would otherwise stage after the abort and leave weights until the lease expired; a commit still on its way
    /// either lands first (and the abort leaves the model as committed) or not at all. Best effort: what a lost message
    /// leaves behind goes when the lease expires.
    /// </summary>
    public async Task AbortAsync()
    {
        if (_finished) return;
        _finished = true;
        Task[] pending;
        lock (_calls) pending = _calls.Where(c => !c.IsCompleted).ToArray();
        try
        {
            await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception)
        {
            // Failed or still hanging: the abort goes ahead either way.
        }
        try
        {
            await Catalog.AbortUpload(Model, Id).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception)
        {
            // The upload's own failure is what the caller must see; the lease sweep removes what this left.
        }
    }

    public async ValueTask DisposeAsync() => await AbortAsync();
}
