using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Headwise.Contracts;
using Proto = Headwise.V1;

namespace Headwise.Client;

/// <summary>
/// <see cref="IAttentionClient"/> over gRPC: reaches any silo's gateway (default http://127.0.0.1:5070) from
/// any network. Server errors arrive as <see cref="HeadwiseException"/> with the status mapped one-to-one to an
/// <see cref="ErrorCode"/>: a call past its deadline is <see cref="ErrorCode.DeadlineExceeded"/>, one the server or the
/// transport cancelled is <see cref="ErrorCode.Cancelled"/>, and neither is retried. A call whose own token was cancelled
/// throws <see cref="OperationCanceledException"/> carrying that token, as .NET callers expect.
/// </summary>
public sealed class GrpcAttentionClient : IAttentionClient
{
    /// <summary>The embedded silo's gRPC address.</summary>
    public static readonly Uri DefaultAddress = new("http://127.0.0.1:5070");

    private const int UploadChunkBytes = 1 << 20;
    private readonly GrpcChannel _channel;
    private readonly bool _ownsChannel;
    private readonly Proto.Attention.AttentionClient _client;
    private readonly CallInvoker _invoker;
    private readonly TimeSpan? _deadline;
    private readonly SharedMemoryPool? _sharedMemory;
    private readonly ForwardRetry _forwardRetry = ForwardRetry.None;

    /// <summary>
    /// Connects to the gateway at <paramref name="address"/> (http:// for cleartext HTTP/2, https:// for TLS), with
    /// the API key from HEADWISE_API_KEY if set, a 30 s deadline per call and retries of idempotent calls on UNAVAILABLE.
    /// </summary>
    public GrpcAttentionClient(Uri address) : this(address, new GrpcAttentionClientOptions())
    {
    }

    /// <summary>Connects to the gateway at <paramref name="address"/> with an API key, retries and handler of the caller's choosing.</summary>
    public GrpcAttentionClient(Uri address, GrpcAttentionClientOptions options)
        : this(options.CreateChannel(address), ownsChannel: true, options.CallDeadline())
    {
        _forwardRetry = new ForwardRetry(options.MaxAttempts, options.InitialBackoff, options.MaxBackoff);
        bool loopback = address.IsLoopback;
        if (options.SharedMemory == SharedMemoryMode.On || (options.SharedMemory == SharedMemoryMode.Auto && loopback))
            _sharedMemory = new SharedMemoryPool(_client, options.SharedMemoryDirectory, fallBackInline: options.SharedMemory == SharedMemoryMode.Auto);
    }

    /// <summary>Uses a channel the caller configured (TLS, handlers) and keeps owning; calls get the 30 s default deadline.</summary>
    public GrpcAttentionClient(GrpcChannel channel) : this(channel, ownsChannel: false, GrpcAttentionClientOptions.DefaultCallDeadline)
    {
    }

    private GrpcAttentionClient(GrpcChannel channel, bool ownsChannel, TimeSpan? deadline)
    {
        _channel = channel;
        _ownsChannel = ownsChannel;
        _deadline = deadline;
        _invoker = channel.CreateCallInvoker();
        _client = new Proto.Attention.AttentionClient(_invoker);
    }

    /// <summary>The deadline of a call starting now; null when the options turned deadlines off.</summary>
    private DateTime? Deadline() => _deadline is { } span ? DateTime.UtcNow + span : null;

    /// <inheritdoc />
    public Task<ModelDescription> CreateModelAsync(string name, AttentionSpec spec, CancellationToken cancellationToken = default) =>
        Call(cancellationToken, async () => GrpcMapping.FromProto(await _client.CreateModelAsync(
            new Proto.CreateModelRequest { Name = name, Spec = GrpcMapping.ToProto(spec) }, deadline: Deadline(), cancellationToken: cancellationToken)));

    /// <inheritdoc />
    public Task<ModelDescription> UploadWeightsAsync(string model, Stream safetensors, WeightLayout layout, string prefix,
        CancellationToken cancellationToken = default) =>
        Call(cancellationToken, async () =>
        {
            using var call = _client.UploadWeights(cancellationToken: cancellationToken);
            try
            {
                await call.RequestStream.WriteAsync(new Proto.UploadWeightsRequest
                {
                    Header = new Proto.UploadHeader { Model = model, Layout = GrpcMapping.ToProto(layout), Prefix = prefix },
                }, cancellationToken);
                var buffer = new byte[UploadChunkBytes];
                int read;
                while ((read = await safetensors.ReadAsync(buffer, cancellationToken)) > 0)
                    await call.RequestStream.WriteAsync(new Proto.UploadWeightsRequest { Chunk = ByteString.CopyFrom(buffer, 0, read) }, cancellationToken);
                await call.RequestStream.CompleteAsync();
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException or IOException && !cancellationToken.IsCancellationRequested)
            {
                // The server answered before the file was sent (a bad header, no key): its status, awaited below, says why.
            }
            return GrpcMapping.FromProto(await call.ResponseAsync);
        });

    /// <inheritdoc />
    public Task<ModelDescription> GetModelAsync(string name, CancellationToken cancellationToken = default) =>
        Call(cancellationToken, async () => GrpcMapping.FromProto(await _client.GetModelAsync(new Proto.GetModelRequest { Name = name }, deadline: Deadline(), cancellationToken: cancellationToken)));

    /// <inheritdoc />
    public Task<IReadOnlyList<ModelDescription>> ListModelsAsync(CancellationToken cancellationToken = default) =>
        Call<IReadOnlyList<ModelDescription>>(cancellationToken, async () =>
            (await _client.ListModelsAsync(new Proto.ListModelsRequest(), deadline: Deadline(), cancellationToken: cancellationToken)).Models.Select(GrpcMapping.FromProto).ToArray());

    /// <inheritdoc />
    public Task DeleteModelAsync(string name, CancellationToken cancellationToken = default) =>
        Call(cancellationToken, async () => await _client.DeleteModelAsync(new Proto.DeleteModelRequest { Name = name }, deadline: Deadline(), cancellationToken: cancellationToken));

    /// <inheritdoc />
    public Task<int> RebalanceAsync(string? model = null, CancellationToken cancellationToken = default) =>
        Call(cancellationToken, async () => (await _client.RebalanceAsync(new Proto.RebalanceRequest { Model = model ?? "" }, deadline: Deadline(), cancellationToken: cancellationToken)).Moved);

    /// <inheritdoc />
    public Task<AttentionOutput> ForwardAsync(string model, AttentionInput input, CancellationToken cancellationToken = default) =>
        ForwardCoreAsync(model, input, destination: null, cancellationToken);

    /// <inheritdoc />
    /// <remarks>Y is parsed from the response straight into <paramref name="output"/> (or read into it from shared memory):
    /// the call allocates no array for it.</remarks>
    public Task<AttentionOutput> ForwardAsync(string model, AttentionInput input, Memory<float> output, CancellationToken cancellationToken = default) =>
        ForwardCoreAsync(model, input, CallerOutput.Slice(input, output), cancellationToken);

    private Task<AttentionOutput> ForwardCoreAsync(string model, AttentionInput input, Memory<float>? destination, CancellationToken cancellationToken)
    {
        var deadline = Deadline();
        Proto.ForwardRequest? inline = null;
        return Call(cancellationToken, () => _forwardRetry.RunAsync(async () =>
        {
            var buffer = _sharedMemory is null ? null
                : await _sharedMemory.RentAsync(2L * input.Input.Data.Length * sizeof(float), cancellationToken);
            if (buffer is not null)
                return await ForwardThroughSharedMemoryAsync(model, input, buffer, destination, deadline, cancellationToken);
            inline ??= GrpcMapping.ToProto(model, input);
            if (destination is not { } into)
                return GrpcMapping.FromProto(await _client.ForwardAsync(inline, deadline: deadline, cancellationToken: cancellationToken));
            var answer = await _invoker.AsyncUnaryCall(OutputIntoCallerBuffer.Forward(into), null,
                new CallOptions(deadline: deadline, cancellationToken: cancellationToken), inline);
            return answer.InDestination
                ? GrpcMapping.FromProto(answer.Response, CallerOutput.Wrap(into, answer.Response.Output))
                : CallerOutput.CopyInto(GrpcMapping.FromProto(answer.Response), into);
        }, cancellationToken));
    }

    /// <summary>X written to <paramref name="buffer"/>, the call carrying references, Y read back from the buffer (into
    /// <paramref name="destination"/> when the caller gave one).</summary>
    private async Task<AttentionOutput> ForwardThroughSharedMemoryAsync(string model, AttentionInput input, SharedMemoryBuffer buffer,
        Memory<float>? destination, DateTime? deadline, CancellationToken cancellationToken)
    {
        long xBytes = (long)input.Input.Data.Length * sizeof(float);
        buffer.Write(0, input.Input.Data);
        Proto.ForwardResponse response;
        try
        {
            response = await _client.ForwardAsync(GrpcMapping.ToSharedMemoryProto(model, input, buffer.Name), deadline: deadline,
                cancellationToken: cancellationToken);
        }
        catch
        {
            await _sharedMemory!.RetireAsync(buffer);
            throw;
        }
        try
        {
            var shape = response.Output?.Shape.Select(s => checked((int)s)).ToArray()
                        ?? throw new HeadwiseException(ErrorCode.Internal, "the server sent no output tensor.");
            var y = destination ?? GC.AllocateUninitializedArray<float>(input.Input.Data.Length);
            if (response.Output.Data.Length != 0 || shape.Aggregate(1L, (product, size) => product * size) != y.Length)
                throw new HeadwiseException(ErrorCode.Internal,
                    $"the server answered a shared-memory forward with output shape [{string.Join(", ", shape)}] and {response.Output.Data.Length} inline bytes.");
            buffer.Read(xBytes, y);
            return GrpcMapping.FromProto(response, new FloatTensor(y, shape));
        }
        finally
        {
            await _sharedMemory!.ReturnAsync(buffer);
        }
    }

    /// <inheritdoc />
    public Task<DecodeSession> OpenSessionAsync(string model, int layer = 0, int maxTokens = 0, CancellationToken cancellationToken = default) =>
        Call(cancellationToken, async () =>
        {
            var response = await _client.OpenSessionAsync(new Proto.OpenSessionRequest { Model = model, Layer = layer, MaxTokens = maxTokens },
                deadline: Deadline(), cancellationToken: cancellationToken);
            return new DecodeSession(response.Session, response.MaxTokens);
        });

    /// <inheritdoc />
    public Task<DecodeOutput> DecodeAsync(string session, FloatTensor input, CancellationToken cancellationToken = default) =>
        Decode(new Proto.DecodeRequest { Session = session, Input = GrpcMapping.ToProto(input) }, cancellationToken);

    /// <inheritdoc />
    public Task<DecodeOutput> DecodeAsync(string session, FloatTensor input, int expectedPosition, CancellationToken cancellationToken = default) =>
        Decode(new Proto.DecodeRequest { Session = session, Input = GrpcMapping.ToProto(input), ExpectedPosition = expectedPosition }, cancellationToken);

    private Task<DecodeOutput> Decode(Proto.DecodeRequest request, CancellationToken cancellationToken) =>
        Call(cancellationToken, async () => GrpcMapping.FromProto(await _client.DecodeAsync(request, deadline: Deadline(), cancellationToken: cancellationToken)));

    /// <inheritdoc />
    /// <remarks>Each step and ping gets <see cref="GrpcAttentionClientOptions.DefaultDeadline"/>; the stream itself has none.</remarks>
    public Task<DecodeStream> OpenDecodeStreamAsync(string session, CancellationToken cancellationToken = default) =>
        Call<DecodeStream>(cancellationToken, async () => await GrpcDecodeStream.OpenAsync(_client, session, _deadline, cancellationToken));

    /// <inheritdoc />
    public IAsyncEnumerable<DecodeOutput> DecodeStreamAsync(string session, IAsyncEnumerable<FloatTensor> inputs, CancellationToken cancellationToken = default)
    {
        SessionIds.Validate(session);
        ArgumentNullException.ThrowIfNull(inputs);
        return PipelinedDecodeStream.RunAsync(_client, session, inputs, cancellationToken);
    }

    /// <inheritdoc />
    public Task CloseSessionAsync(string session, CancellationToken cancellationToken = default) =>
        Call(cancellationToken, async () => await _client.CloseSessionAsync(new Proto.CloseSessionRequest { Session = session }, deadline: Deadline(), cancellationToken: cancellationToken));

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        // The buffers are unregistered over the channel, so before it closes.
        if (_sharedMemory is not null) await _sharedMemory.DisposeAsync();
        if (_ownsChannel) _channel.Dispose();
    }

    private async Task<T> Call<T>(CancellationToken cancellationToken, Func<Task<T>> call)
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            return await call();
        }
        catch (RpcException exception) when (exception.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("the call was cancelled by its caller.", exception, cancellationToken);
        }
        catch (RpcException exception) when (exception.StatusCode is StatusCode.Unavailable or StatusCode.Cancelled
                                             && _deadline is { } span && System.Diagnostics.Stopwatch.GetElapsedTime(started) >= span)
        {
            // The deadline passed while the call was starting: Grpc.Net.Client's timer aborted the HTTP request, and the
            // abort surfaced as "Error starting gRPC call" (UNAVAILABLE) before the deadline's own status was set. The
            // call failed because its deadline passed, so that is what the caller hears (and nothing retries it).
            throw new HeadwiseException(ErrorCode.DeadlineExceeded,
                $"the call did not finish within its deadline of {span.TotalMilliseconds:F0} ms ({exception.Status.Detail}).", exception);
        }
        catch (RpcException exception)
        {
            throw new HeadwiseException(exception.StatusCode.ToErrorCode(), exception.Status.Detail, exception);
        }
    }
}
