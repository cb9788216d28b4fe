using Headwise.Contracts;

namespace Headwise.Client.Tests;

/// <summary>
/// An implementation of <see cref="IAttentionClient"/> from outside the SDK, written before the buffer overload of
/// ForwardAsync existed: a decorator that hands every call to a real client and has no such overload of its own, so that
/// overload is the interface's default body.
/// </summary>
internal sealed class PassThroughClient(IAttentionClient inner) : IAttentionClient
{
    public Task<ModelDescription> CreateModelAsync(string name, AttentionSpec spec, CancellationToken cancellationToken = default) =>
        inner.CreateModelAsync(name, spec, cancellationToken);

    public Task<ModelDescription> UploadWeightsAsync(string model, Stream safetensors, WeightLayout layout, string prefix,
        CancellationToken cancellationToken = default) => inner.UploadWeightsAsync(model, safetensors, layout, prefix, cancellationToken);

    public Task<ModelDescription> GetModelAsync(string name, CancellationToken cancellationToken = default) => inner.GetModelAsync(name, cancellationToken);

    public Task<IReadOnlyList<ModelDescription>> ListModelsAsync(CancellationToken cancellationToken = default) => inner.ListModelsAsync(cancellationToken);

    public Task DeleteModelAsync(string name, CancellationToken cancellationToken = default) => inner.DeleteModelAsync(name, cancellationToken);

    public Task<int> RebalanceAsync(string? model = null, CancellationToken cancellationToken = default) => inner.RebalanceAsync(model, cancellationToken);

    public Task<AttentionOutput> ForwardAsync(string model, AttentionInput input, CancellationToken cancellationToken = default) =>
        inner.ForwardAsync(model, input, cancellationToken);

    public Task<DecodeSession> OpenSessionAsync(string model, int layer = 0, int maxTokens = 0, CancellationToken cancellationToken = default) =>
        inner.OpenSessionAsync(model, layer, maxTokens, cancellationToken);

    public Task<DecodeOutput> DecodeAsync(string session, FloatTensor input, CancellationToken cancellationToken = default) =>
        inner.DecodeAsync(session, input, cancellationToken);

    public Task<DecodeOutput> DecodeAsync(string session, FloatTensor input, int expectedPosition, CancellationToken cancellationToken = default) =>
        inner.DecodeAsync(session, input, expectedPosition, cancellationToken);

    public Task<DecodeStream> OpenDecodeStreamAsync(string session, CancellationToken cancellationToken = default) =>
        inner.OpenDecodeStreamAsync(session, cancellationToken);

    public IAsyncEnumerable<DecodeOutput> DecodeStreamAsync(string session, IAsyncEnumerable<FloatTensor> inputs, CancellationToken cancellationToken = default) =>
        inner.DecodeStreamAsync(session, inputs, cancellationToken);

    public Task CloseSessionAsync(string session, CancellationToken cancellationToken = default) => inner.CloseSessionAsync(session, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
