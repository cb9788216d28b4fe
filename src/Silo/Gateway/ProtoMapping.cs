using Headwise.Contracts;
using Headwise.Wire;
using Proto = Headwise.V1;

namespace Headwise.Silo.Gateway;

/// <summary>Between the public gRPC messages and the cluster's own records.</summary>
internal static class ProtoMapping
{
    public static AttentionSpec ToSpec(Proto.AttentionSpec? spec) =>
        spec is null ? throw new HeadwiseException(ErrorCode.InvalidArgument, "spec is missing.") : SpecWire.FromProto(spec);

    public static Proto.AttentionSpec ToProto(AttentionSpec spec) => SpecWire.ToProto(spec);

    public static Proto.ModelInfo ToProto(ModelDescription model)
    {
        var info = new Proto.ModelInfo { Name = model.Name, Spec = ToProto(model.Spec), Ready = model.Ready };
        info.Heads.Add(model.Heads.Select(h => new Proto.HeadPlacement { Layer = h.Layer, Group = h.Group, Silo = h.Silo }));
        return info;
    }

    public static WeightLayout ToLayout(Proto.WeightLayout layout) => layout switch
    {
        Proto.WeightLayout.Gpt2 => WeightLayout.Gpt2,
        Proto.WeightLayout.Linear => WeightLayout.Linear,
        _ => throw new HeadwiseException(ErrorCode.InvalidArgument,
            $"header.layout is {layout}; use WEIGHT_LAYOUT_GPT2 or WEIGHT_LAYOUT_LINEAR."),
    };

    public static Proto.HeadReport ToProto(HeadReport report)
    {
        var proto = new Proto.HeadReport
        {
            Group = report.Group,
            Silo = report.Silo,
            Kernel = report.Kernel,
            ComputeMs = report.ComputeMs,
            CallMs = report.CallMs,
            InputBytes = report.InputBytes,
            OutputBytes = report.OutputBytes,
            Pieces = report.Pieces,
        };
        proto.Heads.Add(report.Heads);
        return proto;
    }

    public static Proto.SiloTraffic ToProto(SiloTraffic traffic) => new()
    {
        Silo = traffic.Silo,
        Groups = traffic.Groups,
        BytesSent = traffic.BytesSent,
        BytesReceived = traffic.BytesReceived,
    };
}
