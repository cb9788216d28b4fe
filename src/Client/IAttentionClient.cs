using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>
/// Everything an application does with Headwise: manage models, upload their weights, run attention.
/// Two transports implement it alike: <see cref="GrpcAttentionClient"/> (any network, any gRPC peer) and
/// OrleansAttentionClient (package Headwise.Client.Orleans: an Orleans client inside the cluster's network).
/// Failures surface as <see cref="HeadwiseException"/> with an <see cref="ErrorCode"/>.
/// </summary>
public interface IAttentionClient : IAsyncDisposable
{
    /// <summary>Registers a model; AlreadyExists when the name is taken, InvalidArgument for a bad spec.</summary>
    Task<ModelDescription> CreateModelAsync(string name, AttentionSpec spec, CancellationToken cancellationToken = default);

    /// <summary>
    /// Uploads one safetensors file holding the weights of every layer. Atomic: when a tensor is missing or
    /// mis-shaped nothing changes and the error names the tensor and its expected shape.
    /// </summary>
    /// <param name="prefix">Tensor name prefix with "{layer}" for the layer index, e.g. "h.{layer}.attn.".</param>
    Task<ModelDescription> UploadWeightsAsync(string model, Stream safetensors, WeightLayout layout, string prefix,
        CancellationToken cancellationToken = default);

    /// <summary>The model, its readiness and where its heads run; NotFound when unknown.</summary>
    Task<ModelDescription> GetModelAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>All models of the cluster.</summary>
    Task<IReadOnlyList<ModelDescription>> ListModelsAsync(CancellationToken cancellationToken = default);

    /// <summary>Removes the model and its weights; NotFound when unknown.</summary>
    Task DeleteModelAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>
    /// Moves heads to where the placement puts them over the current silos (after silos joined or left);
    /// returns how many moved. <paramref name="model"/> null: every model.
    /// </summary>
    Task<int> RebalanceAsync(string? model = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs one attention layer of <paramref name="model"/> on <paramref name="input"/>. The call reads X while it runs,
    /// without copying it first: leave it unchanged until the task completes.
    /// </summary>
    Task<AttentionOutput> ForwardAsync(string model, AttentionInput input, CancellationToken cancellationToken = default);

    /// <summary>
    /// As <see cref="ForwardAsync(string, AttentionInput, CancellationToken)"/>, with Y written into the first
    /// batch × tokens × model_dim values of <paramref name="output"/> (Y has X's shape), and the answer's
    /// <see cref="AttentionOutput.Output"/> a view of them. A caller that runs many passes reuses one buffer instead of
    /// receiving a new megabyte-sized array per call. Too small a buffer is an <see cref="ArgumentException"/>; if the call
    /// fails, what the buffer holds is undefined.
    /// </summary>
    /// <remarks>
    /// This member came after the others: an implementation written without it gets this body, which runs the ordinary
    /// <see cref="ForwardAsync(string, AttentionInput, CancellationToken)"/> and copies Y into the buffer. The SDK's
    /// gRPC client writes Y there without the intermediate array.
    /// </remarks>
    Task<AttentionOutput> ForwardAsync(string model, AttentionInput input, Memory<float> output, CancellationToken cancellationToken = default) =>
        CallerOutput.ForwardThenCopyAsync(this, model, input, output, cancellationToken);

    /// <summary>
    /// Opens a decode session on one layer: the head grains keep K and V of every token it has seen, so each
    /// <see cref="DecodeAsync(string, FloatTensor, CancellationToken)"/> sends only the new tokens. <paramref name="maxTokens"/> 0: the cluster's default.
    /// </summary>
    Task<DecodeSession> OpenSessionAsync(string model, int layer = 0, int maxTokens = 0, CancellationToken cancellationToken = default);

    /// <summary>
    /// Attention for the new tokens <paramref name="input"/> [batch, new_tokens, model_dim], causal over everything the
    /// session has seen (a prefill is a step with many tokens). NotFound once the session is closed or expired;
    /// ResourceExhausted past its max_tokens. Without an expected position a step whose reply was lost and that is sent
    /// again (the gRPC transport retries UNAVAILABLE by itself) may be applied twice: prefer
    /// <see cref="DecodeAsync(string, FloatTensor, int, CancellationToken)"/>.
    /// </summary>
    Task<DecodeOutput> DecodeAsync(string session, FloatTensor input, CancellationToken cancellationToken = default);

    /// <summary>
    /// <see cref="DecodeAsync(string, FloatTensor, CancellationToken)"/> applied at most once: <paramref name="expectedPosition"/>
    /// is the position the caller believes the session is at before this step (the previous step's
    /// <see cref="DecodeOutput.Position"/>, 0 for the first). A retry of the session's last step (a reply lost, this
    /// client's own retries included) gets the stored answer back with <see cref="DecodeOutput.Replayed"/> set; any
    /// other mismatch is FailedPrecondition naming both positions, and nothing is applied.
    /// </summary>
    Task<DecodeOutput> DecodeAsync(string session, FloatTensor input, int expectedPosition, CancellationToken cancellationToken = default);

    /// <summary>
    /// Opens a stream for the steps of <paramref name="session"/>: each <see cref="DecodeStream.StepAsync(FloatTensor, CancellationToken)"/>
    /// is a Decode answered the same, without a new call per step (over gRPC, one bidirectional DecodeStream call). Steps on
    /// a stream are never retried by the SDK. Over gRPC an unknown session is NotFound here; over Orleans at the first step.
    /// </summary>
    Task<DecodeStream> OpenDecodeStreamAsync(string session, CancellationToken cancellationToken = default);

    /// <summary>
    /// Decodes <paramref name="inputs"/> (each [batch, new_tokens, model_dim]) as consecutive steps of <paramref name="session"/>
    /// over one stream and yields their outputs in order. Over gRPC the steps are pipelined: each input is sent as soon
    /// as <paramref name="inputs"/> gives it, without waiting for earlier answers; over Orleans they run one after another.
    /// The first failing step ends the enumeration with its <see cref="HeadwiseException"/> (steps after it are not
    /// applied, steps before it are); nothing is retried, and no step carries an expected position. No deadline: cancel
    /// <paramref name="cancellationToken"/> to stop, which throws <see cref="OperationCanceledException"/>.
    /// </summary>
    IAsyncEnumerable<DecodeOutput> DecodeStreamAsync(string session, IAsyncEnumerable<FloatTensor> inputs, CancellationToken cancellationToken = default);

    /// <summary>Ends the session and frees its caches; NotFound when it is already gone.</summary>
    Task CloseSessionAsync(string session, CancellationToken cancellationToken = default);
}
