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
    /// <summary>Marks the model ready once every layer holds weights.</summary>
    Task<ModelDescription> MarkReady(string name);
}
