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
internal sealed class AttentionGateway(IGrainFactory grains, IOptions<SiloOptions> silo, IOptions<ForwardLimits> limits)
    : Attention.AttentionBase
{
    private IModelCatalogGrain Catalog => grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog);

    public override async Task<ModelInfo> CreateModel(CreateModelRequest request, ServerCallContext context) =>
        ProtoMapping.ToProto(await Catalog.Create(request.Name, ProtoMapping.ToSpec(request.Spec)));

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

        long maxBytes = silo.Value.MaxUploadBytes;
        using var file = new MemoryStream();
        while (await requestStream.MoveNext(cancellation))
        {
            var part = requestStream.Current;
            if (part.PartCase != UploadWeightsRequest.PartOneofCase.Chunk)
                throw new HeadwiseException(ErrorCode.InvalidArgument, "header appears twice: only the first message may be a header.");
            if (file.Length + part.Chunk.Length > maxBytes)
                throw new HeadwiseException(ErrorCode.ResourceExhausted, $"chunk: the upload exceeds {maxBytes} bytes (Headwise__MaxUploadBytes).");
            part.Chunk.WriteTo(file);
        }
        if (file.Length == 0)
            throw new HeadwiseException(ErrorCode.InvalidArgument, "chunk: the stream ended after the header; send the safetensors file's bytes.");

        var model = await WeightUpload.UploadAsync(grains, header.Model, file.GetBuffer().AsMemory(0, (int)file.Length),
            layout, header.Prefix, cancellation);
        return ProtoMapping.ToProto(model);
    }

    public override async Task<ForwardResponse> Forward(ForwardRequest request, ServerCallContext context)
    {
        ModelName.Validate(request.Model, "model");
        var input = TensorCodec.ToFloat32Bytes(request.Input, 3, "input", limits.Value.MaxRequestBytes);
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
        var result = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(request.Model, request.Layer)).Forward(command, context.CancellationToken)
            .WaitAsync(context.CancellationToken);
        return ToResponse(command, result);
    }

    public override async Task<OpenSessionResponse> OpenSession(OpenSessionRequest request, ServerCallContext context)
    {
        ModelName.Validate(request.Model, "model");
        // The id goes back to the caller only; the cluster knows the session by its digest (SessionIds.GrainKey).
        string session = SessionIds.New();
        var info = await grains.GetGrain<IDecodeSessionGrain>(SessionIds.GrainKey(session)).Open(request.Model, request.Layer, request.MaxTokens)
            .WaitAsync(context.CancellationToken);
        return new OpenSessionResponse { Session = session, MaxTokens = info.MaxTokens };
    }

    public override async Task<DecodeResponse> Decode(DecodeRequest request, ServerCallContext context)
    {
        var session = SessionIds.GrainKey(request.Session);
        var input = TensorCodec.ToFloat32Bytes(request.Input, 3, "input", limits.Value.MaxRequestBytes);
        var command = new DecodeCommand
        {
            Batch = (int)request.Input.Shape[0],
            Tokens = (int)request.Input.Shape[1],
            ModelDim = (int)request.Input.Shape[2],
            Input = input,
        };
        var result = await grains.GetGrain<IDecodeSessionGrain>(session).Decode(command).WaitAsync(context.CancellationToken);
        return new DecodeResponse
        {
            Output = TensorCodec.FromFloat32Bytes(result.Output, command.Batch, command.Tokens, result.ModelDim),
            Position = result.Position,
            ReprefilledGroups = result.ReprefilledGroups,
            TraceId = result.TraceId,
        };
    }

    public override async Task<CloseSessionResponse> CloseSession(CloseSessionRequest request, ServerCallContext context)
    {
        await grains.GetGrain<IDecodeSessionGrain>(SessionIds.GrainKey(request.Session)).Close().WaitAsync(context.CancellationToken);
        return new CloseSessionResponse();
    }

    private static ForwardResponse ToResponse(ForwardCommand command, ForwardResult result)
    {
        var response = new ForwardResponse
        {
            Output = TensorCodec.FromFloat32Bytes(result.Output, command.Batch, command.Tokens, result.ModelDim),
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
