using Headwise.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Headwise.Grains;

/// <summary>
/// The cluster's one list of models (key "catalog"). The gateway and Orleans clients call it to create, find,
/// list and delete models; it initialises and deletes the models' <see cref="LayerGrain"/>s, and it is where an upload
/// of weights commits: one write of <see cref="CatalogEntry.Committed"/> switches the whole model.
/// </summary>
public sealed class ModelCatalogGrain(
    [PersistentState("catalog", StorageNames.Weights)] IPersistentState<CatalogState> state,
    IOptions<WeightUploadOptions> uploads,
    ILogger<ModelCatalogGrain> logger) : Grain, IModelCatalogGrain
{
    private IGrainTimer? _sweep;

    private TimeSpan Lease => TimeSpan.FromSeconds(Math.Max(1, uploads.Value.UploadLeaseSeconds));

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // Uploads whose uploader died with a silo are found here after the catalog moved too.
        if (state.State.Models.Values.Any(m => m.Uploads.Count > 0 || m.Abandoned.Count > 0)) StartSweeping();
        return Task.CompletedTask;
    }

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
        // Forget the name first: a half-deleted model must not look usable. Deleting the layers clears what any upload
        // under way staged in them too.
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

    public async Task<Guid> BeginUpload(string name)
    {
        var entry = Require(name);
        var id = Guid.NewGuid();
        entry.Uploads[id] = DateTime.UtcNow;
        await state.WriteStateAsync();
        StartSweeping();
        return id;
    }

    public Task TouchUpload(string name, Guid upload)
    {
        // In memory only: a catalog that moves meanwhile starts the lease again from its stored time, which is earlier.
        RequireUpload(name, upload)[upload] = DateTime.UtcNow;
        return Task.CompletedTask;
    }

    public async Task<ModelDescription> CommitUpload(string name, Guid upload)
    {
        var entry = Require(name);
        RequireUpload(name, upload);
        var version = new WeightsVersion(upload, entry.Committed.Generation + 1);
        var (previous, wasReady) = (entry.Committed, entry.Ready);
        entry.Committed = version;
        entry.Ready = true;
        entry.Uploads.Remove(upload);
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            // Not committed: the model goes on serving what storage still says, and the upload may try again.
            (entry.Committed, entry.Ready) = (previous, wasReady);
            entry.Uploads[upload] = DateTime.UtcNow;
            throw;
        }
        // Committed. Every layer switches now, so the caller's next forward is answered with the new weights; a layer
        // that still cannot (its silo lost mid-way) switches on its next plan, from this entry.
        await Task.WhenAll(Enumerable.Range(0, entry.Spec.LayerCount).Select(l => PromoteLayer(name, l, version)));
        return await Get(name);
    }

    private async Task PromoteLayer(string name, int layer, WeightsVersion version)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await Layer(name, layer).Promote(version);
                return;
            }
            catch (Exception exception) when (attempt < 4)
            {
                logger.LogWarning(exception, "Switching layer {Layer} of model {Model} to upload {Upload} failed; trying again.", layer, name, version.Upload);
                await Task.Delay(TimeSpan.FromMilliseconds(100 << attempt));
            }
            catch (Exception exception)
            {
                logger.LogError(exception, "Layer {Layer} of model {Model} switches to upload {Upload} on its next plan.", layer, name, version.Upload);
                return;
            }
        }
    }

    public async Task AbortUpload(string name, Guid upload)
    {
        if (!state.State.Models.TryGetValue(name, out var entry) || entry.Committed.Upload == upload) return;
        // Also when the lease had expired already: an uploader that went on staging after the sweep left more behind.
        entry.Uploads.Remove(upload);
        entry.Abandoned[upload] = DateTime.UtcNow;
        await state.WriteStateAsync();
        StartSweeping();
        await AbortLayers(name, entry, upload);
    }

    public Task<WeightsVersion> GetCommitted(string name) => Task.FromResult(Require(name).Committed);

    private async Task AbortLayers(string name, CatalogEntry entry, Guid upload) =>
        await Task.WhenAll(Enumerable.Range(0, entry.Spec.LayerCount).Select(l => Layer(name, l).Abort(upload)));

    private void StartSweeping()
    {
        if (_sweep is not null) return;
        var period = TimeSpan.FromSeconds(Math.Clamp(Lease.TotalSeconds / 4, 1, 30));
        _sweep = this.RegisterGrainTimer(SweepExpiredUploads, new GrainTimerCreationOptions(period, period) { Interleave = false });
    }

    private async Task SweepExpiredUploads(CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow;
        var expired = state.State.Models
            .SelectMany(m => m.Value.Uploads.Where(u => now - u.Value > Lease).Select(u => (Name: m.Key, Entry: m.Value, Upload: u.Key)))
            .ToList();
        foreach (var (name, entry, upload) in expired)
        {
            logger.LogWarning("Upload {Upload} of model {Model} made no progress for {Lease}; its staged weights are dropped.", upload, name, Lease);
            entry.Uploads.Remove(upload);
            entry.Abandoned[upload] = now;
        }
        if (expired.Count > 0) await state.WriteStateAsync(cancellationToken);

        // Dropped only once every layer confirms: a layer whose heads are on a silo not yet declared dead fails now and
        // is asked again on the next tick, so a killed uploader leaves nothing staged for good.
        bool dropped = false;
        foreach (var (name, entry) in state.State.Models)
        {
            foreach (var (upload, since) in entry.Abandoned.ToList())
            {
                try
                {
                    await AbortLayers(name, entry, upload);
                    if (now - since <= Lease) continue;
                    entry.Abandoned.Remove(upload);
                    dropped = true;
                }
                catch (Exception exception)
                {
                    logger.LogWarning(exception, "Dropping the staged weights of upload {Upload} of model {Model} failed; trying again.", upload, name);
                }
            }
        }
        if (dropped) await state.WriteStateAsync(cancellationToken);
        if (!state.State.Models.Values.Any(m => m.Uploads.Count > 0 || m.Abandoned.Count > 0))
        {
            _sweep?.Dispose();
            _sweep = null;
        }
    }

    private CatalogEntry Require(string name) =>
        state.State.Models.TryGetValue(name, out var entry)
            ? entry
            : throw new HeadwiseException(ErrorCode.NotFound, $"model '{name}' not found.");

    private Dictionary<Guid, DateTime> RequireUpload(string name, Guid upload)
    {
        var uploadsOfModel = Require(name).Uploads;
        return uploadsOfModel.ContainsKey(upload)
            ? uploadsOfModel
            : throw new HeadwiseException(ErrorCode.FailedPrecondition,
                $"upload {upload} of model '{name}' is no longer open: it was aborted or made no progress for {Lease.TotalSeconds:0} s (Headwise__UploadLeaseSeconds). Upload again.");
    }

    private ILayerGrain Layer(string model, int layer) => GrainFactory.GetGrain<ILayerGrain>(GrainKeys.Layer(model, layer));

    private static ModelDescription Describe(string name, CatalogEntry entry) =>
        new() { Name = name, Spec = entry.Spec, Ready = entry.Ready };
}
