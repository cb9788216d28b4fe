using Google.Protobuf;
using Headwise.Contracts;
using Headwise.Wire;
using Proto = Headwise.V1;

namespace Headwise.Client;

/// <summary>Between the SDK's public records and the gRPC messages; protobuf types never leave this assembly.</summary>
internal static class GrpcMapping
{
    public static Proto.AttentionSpec ToProto(AttentionSpec spec) => SpecWire.ToProto(spec);

    public static ModelDescription FromProto(Proto.ModelInfo info) => new()
    {
        Name = info.Name,
        Spec = SpecWire.FromProto(info.Spec),
        Ready = info.Ready,
        Heads = info.Heads.Select(h => new HeadLocation(h.Layer, h.Group, h.Silo)).ToArray(),
    };

    public static Proto.WeightLayout ToProto(WeightLayout layout) => layout switch
    {
        WeightLayout.Gpt2 => Proto.WeightLayout.Gpt2,
        WeightLayout.Linear => Proto.WeightLayout.Linear,
        _ => Proto.WeightLayout.Unspecified,
    };

    public static Proto.ForwardRequest ToProto(string model, AttentionInput input)
    {
        var tensor = new Proto.Tensor
        {
            Dtype = Proto.DType.F32,
            Data = UnsafeByteOperations.UnsafeWrap(BytesOverFloats.Of(input.Input.Data)),
        };
        return Request(model, input, tensor);
    }

    /// <summary>The request for a forward pass whose X the caller wrote to <paramref name="region"/> at offset 0 and whose Y
    /// the silo writes right after it: the input tensor carries only shape and dtype.</summary>
    public static Proto.ForwardRequest ToSharedMemoryProto(string model, AttentionInput input, string region)
    {
        long bytes = (long)input.Input.Data.Length * sizeof(float);
        var request = Request(model, input, new Proto.Tensor { Dtype = Proto.DType.F32 });
        request.InputShm = new Proto.SharedMemoryRef { Region = region, Offset = 0, ByteSize = bytes };
        request.OutputShm = new Proto.SharedMemoryRef { Region = region, Offset = bytes, ByteSize = bytes };
        return request;
    }

    private static Proto.ForwardRequest Request(string model, AttentionInput input, Proto.Tensor tensor)
    {
        tensor.Shape.Add(input.Input.Shape.Select(s => (long)s));
        var request = new Proto.ForwardRequest
        {
            Model = model,
            Layer = input.Layer,
            Input = tensor,
            Causal = input.Causal,
            ReturnAttention = input.ReturnAttention,
            ReturnHeadOutputs = input.ReturnHeadOutputs,
            Bf16Wire = input.Bf16Wire,
        };
        if (input.Lengths is { } lengths) request.Lengths.Add(lengths);
        return request;
    }

    public static AttentionOutput FromProto(Proto.ForwardResponse response) => FromProto(response,
        FromProto(response.Output) ?? throw new HeadwiseException(ErrorCode.Internal, "the server sent no output tensor."));

    /// <summary>The answer, with Y given apart (<paramref name="output"/>: read from shared memory).</summary>
    public static AttentionOutput FromProto(Proto.ForwardResponse response, FloatTensor output) => new()
    {
        Output = output,
        Heads = response.Heads.Select(h => new HeadReport
        {
            Group = h.Group,
            Heads = h.Heads.ToArray(),
            Silo = h.Silo,
            Kernel = h.Kernel,
            ComputeMs = h.ComputeMs,
            CallMs = h.CallMs,
            InputBytes = h.InputBytes,
            OutputBytes = h.OutputBytes,
            Pieces = h.Pieces,
        }).ToArray(),
        Silos = response.Silos.Select(s => new SiloTraffic
        {
            Silo = s.Silo,
            Groups = s.Groups,
            BytesSent = s.BytesSent,
            BytesReceived = s.BytesReceived,
        }).ToArray(),
        Attention = FromProto(response.Attention),
        HeadOutputs = FromProto(response.HeadOutputs),
        OutputProjection = response.OutputProjection == "gathered" ? OutputProjectionMode.Gathered : OutputProjectionMode.PartialSums,
        TraceId = response.TraceId,
    };

    public static Proto.Tensor ToProto(FloatTensor input)
    {
        var tensor = new Proto.Tensor
        {
            Dtype = Proto.DType.F32,
            Data = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(input.Data.Span)),
        };
        tensor.Shape.Add(input.Shape.Select(s => (long)s));
        return tensor;
    }

    public static DecodeOutput FromProto(Proto.DecodeResponse response) => new()
    {
        Output = FromProto(response.Output) ?? throw new HeadwiseException(ErrorCode.Internal, "the server sent no output tensor."),
        Position = response.Position,
        ReprefilledGroups = response.ReprefilledGroups,
        Replayed = response.Replayed,
        TraceId = response.TraceId,
    };

    public static DecodeOutput FromProto(Proto.DecodeStreamResponse response) => new()
    {
        Output = FromProto(response.Output) ?? throw new HeadwiseException(ErrorCode.Internal, "the server sent no output tensor."),
        Position = response.Position,
        ReprefilledGroups = response.ReprefilledGroups,
        Replayed = response.Replayed,
        TraceId = response.TraceId,
    };

    private static FloatTensor? FromProto(Proto.Tensor? tensor)
    {
        if (tensor is null) return null;
        if (tensor.Dtype != Proto.DType.F32)
            throw new HeadwiseException(ErrorCode.Internal, $"the server sent a {tensor.Dtype} tensor; this SDK reads DTYPE_F32.");
        return new FloatTensor(FloatsOverBytes.Of(tensor.Data.Memory), tensor.Shape.Select(s => checked((int)s)).ToArray());
    }
}
