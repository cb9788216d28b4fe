namespace Headwise.Client;

/// <summary>What <see cref="HuggingFaceImport.ImportHuggingFaceAsync"/> takes from a checkpoint.</summary>
public sealed record HuggingFaceImportOptions
{
    /// <summary>
    /// The checkpoint's layers to import, each once; null means all. The model holds them renumbered in ascending order:
    /// importing layers 0, 3, 4, 5 gives a 4-layer model whose layer 1 is the checkpoint's layer 3.
    /// </summary>
    public IReadOnlyList<int>? Layers { get; init; }
}
