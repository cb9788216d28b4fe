namespace Headwise.Contracts;

/// <summary>The cluster's list of models (key <see cref="GrainKeys.Catalog"/>).</summary>
public interface IModelCatalogGrain : IGrainWithStringKey
{
    /// <summary>Registers a model and initialises its layers; AlreadyExists if the name is taken.</summary>
    Task<ModelDescription> Create(string name, AttentionSpec spec);
    /// <summary>The model with its head placements; NotFound if unknown.</summary>
    Task<ModelDescription> Get(string name);
    Task<ModelDescription[]> List();
    /// <summary>Removes the model and the weights of all its heads; NotFound if unknown.</summary>
    Task Delete(string name);
    /// <summary>
    /// Moves the heads of one model (or of all, when <paramref name="name"/> is null) to where the placement puts
    /// them over the current silos; returns the heads moved.
    /// </summary>
    Task<int> Rebalance(string? name);
    /// <summary>
    /// Opens an upload of the model's weights: its layers and heads stage them under the id returned, beside the
    /// weights they serve, until <see cref="CommitUpload"/> switches the whole model at once. An upload that is neither
    /// committed nor touched for the lease (Headwise__UploadLeaseSeconds) is aborted and its staged weights dropped.
    /// </summary>
    Task<Guid> BeginUpload(string name);
    /// <summary>Renews the upload's lease; FailedPrecondition when it was aborted or has expired.</summary>
    Task TouchUpload(string name, Guid upload);
    /// <summary>
    /// Makes the staged upload the model's weights in one storage write, then switches every layer to it. The old
    /// weights serve until that write; two uploads committed one after the other end as the later one.
    /// </summary>
    Task<ModelDescription> CommitUpload(string name, Guid upload);
    /// <summary>Drops what the upload staged; the weights being served are untouched.</summary>
    Task AbortUpload(string name, Guid upload);
    /// <summary>The weights the model serves (<see cref="WeightsVersion.None"/> before the first commit).</summary>
    /// <remarks>Interleaves with everything: a layer asks it while planning, which a commit in progress may be waiting
    /// on (the commit awaits that layer's switch), and a read of one field needs no turn of its own.</remarks>
    [Orleans.Concurrency.AlwaysInterleave]
    Task<WeightsVersion> GetCommitted(string name);
}
