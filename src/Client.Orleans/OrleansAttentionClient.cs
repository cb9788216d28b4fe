using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>
/// <see cref="IAttentionClient"/> over an Orleans client: calls the catalog and layer grains directly, for
/// applications that run inside the cluster's network. Weight files are parsed here, before anything is sent.
/// </summary>
/// <remarks>
/// To see a forward pass in the caller's own trace, the application configures its Orleans client with
/// <c>clientBuilder.AddActivityPropagation()</c> and listens to the <c>Microsoft.Orleans.Application</c> ActivitySource
/// (for example <c>tracing.AddSource("Microsoft.Orleans.Application")</c>): without a listener Orleans makes no call
/// span and passes no trace context on. The silos do both already; the trace id is in <see cref="AttentionOutput.TraceId"/>.
/// When the silos set Headwise__OrleansTls__* their gateways take only mutual-TLS clients: configure the client builder with
/// <see cref="OrleansTlsClientBuilderExtensions.UseHeadwiseTls"/> and a certificate the silos trust.
/// </remarks>
public sealed class OrleansAttentionClient(IClusterClient cluster) : IAttentionClient
{
    private IModelCatalogGrain Catalog => cluster.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog);

    /// <inheritdoc />
    public Task<ModelDescription> CreateModelAsync(string name, AttentionSpec spec, CancellationToken cancellationToken = default) =>
        Catalog.Create(name, spec).WaitAsync(cancellationToken);

    /// <inheritdoc />
    public async Task<ModelDescription> UploadWeightsAsync(string model, Stream safetensors, WeightLayout layout, string prefix,
        CancellationToken cancellationToken = default)
    {
        // Streamed: each layer is staged as soon as it has been read, whatever the file's size.
        return await WeightUpload.StreamAsync(cluster, model, Chunks(safetensors, cancellationToken), layout, prefix, long.MaxValue, cancellationToken);
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Chunks(Stream stream,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var buffer = new byte[4 << 20];
        int read;
        // The reader copies what it keeps before asking for the next chunk, so one buffer serves the whole file.
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
            yield return buffer.AsMemory(0, read);
    }

    /// <inheritdoc />
    public Task<ModelDescription> GetModelAsync(string name, CancellationToken cancellationToken = default) =>
        Catalog.Get(ModelName.Validate(name)).WaitAsync(cancellationToken);

    /// <inheritdoc />
    public async Task<IReadOnlyList<ModelDescription>> ListModelsAsync(CancellationToken cancellationToken = default) =>
        await Catalog.List().WaitAsync(cancellationToken);

    /// <inheritdoc />
    public Task DeleteModelAsync(string name, CancellationToken cancellationToken = default) =>
        Catalog.Delete(ModelName.Validate(name)).WaitAsync(cancellationToken);

    /// <inheritdoc />
    public Task<int> RebalanceAsync(string? model = null, CancellationToken cancellationToken = default) =>
        Catalog.Rebalance(model is null ? null : ModelName.Validate(model, "model")).WaitAsync(cancellationToken);

    /// <inheritdoc />
    /// <remarks>Y crosses from the cluster as an Orleans message and is copied into <paramref name="output"/>.</remarks>
    public Task<AttentionOutput> ForwardAsync(string model, AttentionInput input, Memory<float> output, CancellationToken cancellationToken = default) =>
        CallerOutput.ForwardThenCopyAsync(this, model, input, output, cancellationToken);

    /// <inheritdoc />
    public async Task<AttentionOutput> ForwardAsync(string model, AttentionInput input, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model, "model");
        var shape = input.Input.Shape;
        if (shape.Length != 3)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"input.shape is [{string.Join(", ", shape)}]; it must have 3 dimensions.");
        var command = new ForwardCommand
        {
            Batch = shape[0],
            Tokens = shape[1],
            ModelDim = shape[2],
            Input = FloatBytes.ToBytes(input.Input.Data.Span),
            Causal = input.Causal,
            Lengths = input.Lengths?.ToArray() ?? [],
            ReturnAttention = input.ReturnAttention,
            ReturnHeadOutputs = input.ReturnHeadOutputs,
            Bf16Wire = input.Bf16Wire,
        };
        var result = await cluster.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(model, input.Layer)).Forward(command, cancellationToken).WaitAsync(cancellationToken);
        int batch = shape[0], tokens = shape[1];
        return new AttentionOutput
        {
            Output = new FloatTensor(FloatBytes.ToFloats(result.Output), batch, tokens, result.ModelDim),
            Heads = result.Heads,
            Silos = result.Silos,
            Attention = result.Attention is { } attention
                ? new FloatTensor(FloatBytes.ToFloats(attention), batch, result.HeadCount, tokens, tokens)
                : null,
            HeadOutputs = result.HeadOutputs is { } headOutputs
                ? new FloatTensor(FloatBytes.ToFloats(headOutputs), batch, result.HeadCount, tokens, result.HeadDim)
                : null,
            OutputProjection = result.OutputProjection,
            TraceId = result.TraceId,
        };
    }

    /// <inheritdoc />
    public async Task<DecodeSession> OpenSessionAsync(string model, int layer = 0, int maxTokens = 0, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model, "model");
        // The id stays with the caller; the cluster knows the session by its digest (SessionIds.GrainKey), as through gRPC.
        string session = SessionIds.New();
        var info = await cluster.GetGrain<IDecodeSessionGrain>(SessionIds.GrainKey(session)).Open(model, layer, maxTokens).WaitAsync(cancellationToken);
        return new DecodeSession(session, info.MaxTokens);
    }

    /// <inheritdoc />
    public Task<DecodeOutput> DecodeAsync(string session, FloatTensor input, CancellationToken cancellationToken = default) =>
        DecodeStep(session, input, null, cancellationToken);

    /// <inheritdoc />
    public Task<DecodeOutput> DecodeAsync(string session, FloatTensor input, int expectedPosition, CancellationToken cancellationToken = default) =>
        DecodeStep(session, input, expectedPosition, cancellationToken);

    /// <inheritdoc />
    /// <remarks>Checks the id's form only: an unknown session is NotFound at its first step.</remarks>
    public Task<DecodeStream> OpenDecodeStreamAsync(string session, CancellationToken cancellationToken = default)
    {
        SessionIds.Validate(session);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult<DecodeStream>(new OrleansDecodeStream(this, session));
    }

    /// <inheritdoc />
    /// <remarks>Over Orleans the steps run one after another: each input is sent when the previous answer is back.</remarks>
    public async IAsyncEnumerable<DecodeOutput> DecodeStreamAsync(string session, IAsyncEnumerable<FloatTensor> inputs,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        SessionIds.Validate(session);
        await foreach (var input in inputs.WithCancellation(cancellationToken))
            yield return await DecodeStep(session, input, null, cancellationToken);
    }

    /// <summary>One step of the session: what DecodeAsync and each step of a decode stream run.</summary>
    internal async Task<DecodeOutput> DecodeStep(string session, FloatTensor input, int? expectedPosition, CancellationToken cancellationToken)
    {
        string grainKey = SessionIds.GrainKey(session);
        var shape = input.Shape;
        if (shape.Length != 3)
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"input.shape is [{string.Join(", ", shape)}]; it must have 3 dimensions.");
        var command = new DecodeCommand
        {
            Batch = shape[0], Tokens = shape[1], ModelDim = shape[2], Input = FloatBytes.ToBytes(input.Data.Span), ExpectedPosition = expectedPosition,
        };
        var result = await cluster.GetGrain<IDecodeSessionGrain>(grainKey).Decode(command).WaitAsync(cancellationToken);
        return new DecodeOutput
        {
            Output = new FloatTensor(FloatBytes.ToFloats(result.Output), shape[0], shape[1], result.ModelDim),
            Position = result.Position,
            ReprefilledGroups = result.ReprefilledGroups,
            Replayed = result.Replayed,
            TraceId = result.TraceId,
        };
    }

    /// <inheritdoc />
    public Task CloseSessionAsync(string session, CancellationToken cancellationToken = default) =>
        cluster.GetGrain<IDecodeSessionGrain>(SessionIds.GrainKey(session)).Close().WaitAsync(cancellationToken);

    /// <summary>The cluster client belongs to whoever built it; nothing to release here.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
