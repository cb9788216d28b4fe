using Grpc.Core;
using Headwise.Contracts;
using Headwise.V1;
using Microsoft.Extensions.Options;
using ForwardResult = Headwise.Contracts.ForwardResult;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;

namespace Headwise.Silo.Gateway;

/// <summary>
/// The gRPC edge of the cluster, served by every silo: it checks the wire format, then hands each call to
/// the model catalog or to the layer's coordinator grain.
/// </summary>
internal sealed partial class AttentionGateway(IGrainFactory grains, IOptions<SiloOptions> silo, IOptions<ForwardLimits> limits,
    IOptions<ModelLimits> modelLimits, ModelLayers layers, KnownSessions sessions, UploadGate uploads, ForwardGate gate,
    DecodeStreamDrain streamDrain, SharedMemoryRegistry sharedMemory, TensorBuffers buffers)
    : Attention.AttentionBase
{
    private IModelCatalogGrain Catalog => grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog);

    public override async Task<ModelInfo> CreateModel(CreateModelRequest request, ServerCallContext context)
    {
        ModelName.Validate(request.Name);
        var spec = ProtoMapping.ToSpec(request.Spec);
        modelLimits.Value.Check(spec);
        return ProtoMapping.ToProto(await Catalog.Create(request.Name, spec));
    }

    public override async Task<ModelInfo> GetModel(GetModelRequest request, ServerCallContext context) =>
        ProtoMapping.ToProto(await Catalog.Get(ModelName.Validate(request.Name)));

    public override async Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
    {
        var response = new ListModelsResponse();
        response.Models.Add((await Catalog.List()).Select(ProtoMapping.ToProto));
        return response;
    }

    public override async Task<DeleteModelResponse> DeleteModel(DeleteModelRequest request, ServerCallContext context)
    {
        await Catalog.Delete(ModelName.Validate(request.Name));
        return new DeleteModelResponse();
    }

    public override async Task<RebalanceResponse> Rebalance(RebalanceRequest request, ServerCallContext context)
    {
        string? model = string.IsNullOrEmpty(request.Model) ? null : ModelName.Validate(request.Model, "model");
        return new RebalanceResponse { Moved = await Catalog.Rebalance(model) };
    }

    public override async Task<ModelInfo> UploadWeights(IAsyncStreamReader<UploadWeightsRequest> requestStream, ServerCallContext context)
    {
        var cancellation = context.CancellationToken;
        if (!await requestStream.MoveNext(cancellation) || requestStream.Current.PartCase != UploadWeightsRequest.PartOneofCase.Header)
            throw new HeadwiseException(ErrorCode.InvalidArgument, "header is missing: the first message of UploadWeights must be the header.");
        var header = requestStream.Current.Header;
        ModelName.Validate(header.Model, "header.model");
        var layout = ProtoMapping.ToLayout(header.Layout);

        using var slot = uploads.Enter();
        long maxBytes = silo.Value.MaxUploadBytes;
        var model = await WeightUpload.StreamAsync(grains, header.Model,
            Chunks(requestStream, maxBytes, silo.Value.MaxUploadHeaderBytes, cancellation), layout, header.Prefix, maxBytes, cancellation);
        return ProtoMapping.ToProto(model);
    }

    // The chunks after the header; each is parsed and staged as it arrives (no whole-file buffer).
    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Chunks(IAsyncStreamReader<UploadWeightsRequest> requestStream,
        long maxBytes, long maxHeaderBytes, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellation)
    {
        var lengthPrefix = new byte[8];
        int seen = 0;
        while (await requestStream.MoveNext(cancellation))
        {
            var part = requestStream.Current;
            if (part.PartCase != UploadWeightsRequest.PartOneofCase.Chunk)
                throw new HeadwiseException(ErrorCode.InvalidArgument, "header appears twice: only the first message may be a header.");
            if (seen < 8)
            {
                // The header's length is judged on the first 8 bytes, before the header itself is received.
                int take = Math.Min(8 - seen, part.Chunk.Length);
                part.Chunk.Span[..take].CopyTo(lengthPrefix.AsSpan(seen));
                seen += take;
                if (seen == 8) UploadHeaderLimit.Check(lengthPrefix, maxBytes, maxHeaderBytes);
            }
            yield return part.Chunk.Memory;
        }
    }

    public override async Task<ForwardResponse> Forward(ForwardRequest request, ServerCallContext context)
    {
        ModelName.Validate(request.Model, "model");
        using var ranges = SharedMemoryRanges.Lease(sharedMemory, context, request);
        var input = ranges.Input is { } inputRange
            ? TensorCodec.ToFloat32Bytes(request.Input, 3, "input", limits.Value.MaxRequestBytes, inputRange, buffers)
            : TensorCodec.ToFloat32Bytes(request.Input, 3, "input", limits.Value.MaxRequestBytes, buffers);
        ranges.CheckOutput(input.LongLength);
        var command = new ForwardCommand
        {
            Batch = (int)request.Input.Shape[0],
            Tokens = (int)request.Input.Shape[1],
            ModelDim = (int)request.Input.Shape[2],
            Input = input,
            Causal = request.Causal,
            Lengths = request.Lengths.ToArray(),
            ReturnAttention = request.ReturnAttention,
            ReturnHeadOutputs = request.ReturnHeadOutputs,
            Bf16Wire = request.Bf16Wire,
        };
        await layers.Require(request.Model, request.Layer);
        ForwardResult result;
        try
        {
            result = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(request.Model, request.Layer)).Forward(command, context.CancellationToken)
                .WaitAsync(context.CancellationToken);
        }
        catch (HeadwiseException e) when (e.Code == ErrorCode.NotFound)
        {
            layers.Forget(request.Model);
            throw;
        }
        FiniteAnswer.Require("input.data", command.Input, result.Output, result.Attention, result.HeadOutputs);
        var response = ToResponse(command, result, outputInline: ranges.Output is null);
        if (ranges.Output is { } outputRange)
        {
            // Through shared memory Y is this call's own array once it is copied into the region. Reused, its pages stay
            // mapped: see TensorBuffers.
            outputRange.Write(result.Output);
            buffers.Return(result.Output);
        }
        else ReturnWhenSent(context, result.Output);
        // X, copied out of shared memory or parsed into a pooled array (PooledForwardRequest), is read by nothing once the
        // pass has answered; a pass that failed leaves it to the GC, as a straggling head may still read it.
        buffers.Return(input);
        return response;
    }

    // Inline, the response wraps Y without a copy (TensorCodec.FromFloat32Bytes), and Y is the pooled partial sum its pass
    // wrote (TensorBuffers): it goes back to the pool once the response has been written, not to the GC. Left to the GC,
    // every pass's W_O wrote into fresh pages, and at T = 1024 every tenth pass ran a gen-2 collection.
    private void ReturnWhenSent(ServerCallContext context, byte[] output) =>
        context.GetHttpContext().Response.OnCompleted(() =>
        {
            buffers.Return(output);
            return Task.CompletedTask;
        });

    public override async Task<OpenSessionResponse> OpenSession(OpenSessionRequest request, ServerCallContext context)
    {
        ModelName.Validate(request.Model, "model");
        await layers.Require(request.Model, request.Layer);
        // The id goes back to the caller only; the cluster knows the session by its digest (SessionIds.GrainKey).
        string session = SessionIds.New();
        var info = await grains.GetGrain<IDecodeSessionGrain>(SessionIds.GrainKey(session)).Open(request.Model, request.Layer, request.MaxTokens)
            .WaitAsync(context.CancellationToken);
        sessions.Opened(SessionIds.GrainKey(session));
        return new OpenSessionResponse { Session = session, MaxTokens = info.MaxTokens };
    }

    public override async Task<DecodeResponse> Decode(DecodeRequest request, ServerCallContext context)
    {
        var (command, result) = await Step(SessionIds.GrainKey(request.Session), request.Input,
            request.HasExpectedPosition ? request.ExpectedPosition : null, context.CancellationToken);
        return new DecodeResponse
        {
            Output = TensorCodec.FromFloat32Bytes(result.Output, command.Batch, command.Tokens, result.ModelDim),
            Position = result.Position,
            ReprefilledGroups = result.ReprefilledGroups,
            Replayed = result.Replayed,
            TraceId = result.TraceId,
        };
    }

    /// <summary>One decode step of the session <paramref name="session"/> (its grain key): what Decode and each step of
    /// DecodeStream run.</summary>
    private async Task<(DecodeCommand Command, DecodeResult Result)> Step(string session, Tensor? input, int? expectedPosition,
        CancellationToken cancellation)
    {
        var bytes = TensorCodec.ToFloat32Bytes(input, 3, "input", limits.Value.MaxRequestBytes);
        await sessions.Require(session);
        var command = new DecodeCommand
        {
            Batch = (int)input!.Shape[0],
            Tokens = (int)input.Shape[1],
            ModelDim = (int)input.Shape[2],
            Input = bytes,
            ExpectedPosition = expectedPosition,
        };
        var grain = grains.GetGrain<IDecodeSessionGrain>(session);
        // A caller that is gone starts no step: a stream reset by its client may still hold steps it had sent, and one
        // started now could land after the caller's next step on another call (WaitAsync below stops the waiting, not
        // the grain call).
        cancellation.ThrowIfCancellationRequested();
        // A step that names its expected position is applied at most once (a retry of an applied step is answered from
        // the session's record), so the gateway may retry it while the coordinator's silo is being declared dead and
        // the session is rebuilt elsewhere: the caller sees the step answered, not UNAVAILABLE. Without the position a
        // retry could apply the step twice; that caller gets the failure.
        var result = command.ExpectedPosition is null
            ? await grain.Decode(command).WaitAsync(cancellation)
            : await HeadCallRetry.RunAsync(() => grain.Decode(command).WaitAsync(cancellation), () => { }, cancellation);
        FiniteAnswer.Require("input.data", command.Input, result.Output);
        return (command, result);
    }

    public override async Task<CloseSessionResponse> CloseSession(CloseSessionRequest request, ServerCallContext context)
    {
        var session = SessionIds.GrainKey(request.Session);
        await sessions.Require(session);
        await grains.GetGrain<IDecodeSessionGrain>(session).Close().WaitAsync(context.CancellationToken);
        sessions.Closed(session);
        return new CloseSessionResponse();
    }

    private static ForwardResponse ToResponse(ForwardCommand command, ForwardResult result, bool outputInline)
    {
        var response = new ForwardResponse
        {
            Output = outputInline
                ? TensorCodec.FromFloat32Bytes(result.Output, command.Batch, command.Tokens, result.ModelDim)
                : TensorCodec.ShapeOnly(command.Batch, command.Tokens, result.ModelDim),
            TraceId = result.TraceId,
            OutputProjection = result.OutputProjection == OutputProjectionMode.Gathered ? "gathered" : "partial_sums",
        };
        response.Heads.Add(result.Heads.Select(ProtoMapping.ToProto));
        response.Silos.Add(result.Silos.Select(ProtoMapping.ToProto));
        if (result.Attention is { } attention)
            response.Attention = TensorCodec.FromFloat32Bytes(attention, command.Batch, result.HeadCount, command.Tokens, command.Tokens);
        if (result.HeadOutputs is { } headOutputs)
            response.HeadOutputs = TensorCodec.FromFloat32Bytes(headOutputs, command.Batch, result.HeadCount, command.Tokens, result.HeadDim);
        return response;
    }
}
