namespace Headwise.Client;

/// <summary>
/// How far an <see cref="HuggingFaceImport.ImportHuggingFaceAsync"/> has come. Bytes count what the upload has taken so far
/// of everything it sends: the float32 attention tensors of the chosen layers and a small header, nothing else.
/// </summary>
/// <param name="BytesSent">Bytes handed to the upload so far.</param>
/// <param name="TotalBytes">Bytes the upload sends in all.</param>
/// <param name="LayersDone">Chosen layers whose every attention tensor has been handed to the upload.</param>
/// <param name="TotalLayers">Chosen layers.</param>
public sealed record ImportProgress(long BytesSent, long TotalBytes, int LayersDone, int TotalLayers);
