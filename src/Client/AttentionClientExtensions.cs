using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>Conveniences on top of <see cref="IAttentionClient"/> that every transport shares.</summary>
public static class AttentionClientExtensions
{
    /// <summary>Uploads the safetensors file at <paramref name="path"/>.</summary>
    public static async Task<ModelDescription> UploadWeightsAsync(this IAttentionClient client, string model, string path,
        WeightLayout layout, string prefix, CancellationToken cancellationToken = default)
    {
        await using var file = File.OpenRead(path);
        return await client.UploadWeightsAsync(model, file, layout, prefix, cancellationToken);
    }
}
