using Headwise.Contracts;
using Proto = Headwise.V1;

namespace Headwise.Wire;

/// <summary>
/// An attention spec between its record and its proto message. The SDK and the silo each generate their own internal
/// proto types, so this one file is compiled into both: a spec field added to the contract is mapped the same way at
/// both ends of the wire, or at neither.
/// </summary>
internal static class SpecWire
{
    public static Proto.AttentionSpec ToProto(AttentionSpec spec)
    {
        var proto = new Proto.AttentionSpec
        {
            ModelDim = spec.ModelDim,
            HeadCount = spec.HeadCount,
            KvHeadCount = spec.KvHeadCount,
            HeadDim = spec.HeadDim,
            LayerCount = spec.LayerCount,
            Bias = spec.Bias,
            Scale = spec.Scale,
            Window = spec.Window,
            RopeTheta = spec.RopeTheta,
            RopeDim = spec.RopeDim,
        };
        // The fields added after the first contract: set only when given, so "absent" keeps its meaning.
        if (spec.OutputBias is bool outputBias) proto.OutputBias = outputBias;
        if (spec.RopeScaling is { } scaling)
            proto.RopeScaling = new Proto.RopeScaling
            {
                Type = scaling.Type, Factor = scaling.Factor, LowFreqFactor = scaling.LowFreqFactor,
                HighFreqFactor = scaling.HighFreqFactor, OriginalMaxPositions = scaling.OriginalMaxPositions,
            };
        return proto;
    }

    public static AttentionSpec FromProto(Proto.AttentionSpec spec) => new()
    {
        ModelDim = spec.ModelDim,
        HeadCount = spec.HeadCount,
        KvHeadCount = spec.KvHeadCount,
        HeadDim = spec.HeadDim,
        LayerCount = spec.LayerCount,
        Bias = spec.Bias,
        Scale = spec.Scale,
        Window = spec.Window,
        RopeTheta = spec.RopeTheta,
        RopeDim = spec.RopeDim,
        OutputBias = spec.HasOutputBias ? spec.OutputBias : null,
        RopeScaling = spec.RopeScaling is { } scaling
            ? new RopeScaling
            {
                Type = scaling.Type, Factor = scaling.Factor, LowFreqFactor = scaling.LowFreqFactor,
                HighFreqFactor = scaling.HighFreqFactor, OriginalMaxPositions = scaling.OriginalMaxPositions,
            }
            : null,
    };
}
