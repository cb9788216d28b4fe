namespace Headwise.Contracts.Serialization;

/// <summary>
/// <see cref="AttentionSpec"/> as Orleans serializes it. The record lives in Headwise.Client, which stays free of
/// Orleans so that a gRPC-only application does not pull it; its wire shape is declared here instead.
/// </summary>
[GenerateSerializer, Immutable, Alias("headwise.spec")]
public struct AttentionSpecSurrogate
{
    [Id(0)] public int ModelDim;
    [Id(1)] public int HeadCount;
    [Id(2)] public int KvHeadCount;
    [Id(3)] public int HeadDim;
    [Id(4)] public int LayerCount;
    [Id(5)] public bool Bias;
    [Id(6)] public float Scale;
    [Id(7)] public int Window;
    [Id(8)] public float RopeTheta;
    [Id(9)] public int RopeDim;
    [Id(10)] public bool? OutputBias;
    /// <summary>null when the spec has no rope_scaling; the fields below are its parts.</summary>
    [Id(11)] public string? RopeScalingType;
    [Id(12)] public float RopeScalingFactor;
    [Id(13)] public float RopeScalingLowFreqFactor;
    [Id(14)] public float RopeScalingHighFreqFactor;
    [Id(15)] public int RopeScalingOriginalMaxPositions;
}

/// <summary>Between <see cref="AttentionSpec"/> and its Orleans wire shape.</summary>
[RegisterConverter]
public sealed class AttentionSpecConverter : IConverter<AttentionSpec, AttentionSpecSurrogate>
{
    public AttentionSpec ConvertFromSurrogate(in AttentionSpecSurrogate surrogate) => new()
    {
        ModelDim = surrogate.ModelDim,
        HeadCount = surrogate.HeadCount,
        KvHeadCount = surrogate.KvHeadCount,
        HeadDim = surrogate.HeadDim,
        LayerCount = surrogate.LayerCount,
        Bias = surrogate.Bias,
        Scale = surrogate.Scale,
        Window = surrogate.Window,
        RopeTheta = surrogate.RopeTheta,
        RopeDim = surrogate.RopeDim,
        OutputBias = surrogate.OutputBias,
        RopeScaling = surrogate.RopeScalingType is null ? null : new RopeScaling
        {
            Type = surrogate.RopeScalingType,
            Factor = surrogate.RopeScalingFactor,
            LowFreqFactor = surrogate.RopeScalingLowFreqFactor,
            HighFreqFactor = surrogate.RopeScalingHighFreqFactor,
            OriginalMaxPositions = surrogate.RopeScalingOriginalMaxPositions,
        },
    };

    public AttentionSpecSurrogate ConvertToSurrogate(in AttentionSpec value) => new()
    {
        ModelDim = value.ModelDim,
        HeadCount = value.HeadCount,
        KvHeadCount = value.KvHeadCount,
        HeadDim = value.HeadDim,
        LayerCount = value.LayerCount,
        Bias = value.Bias,
        Scale = value.Scale,
        Window = value.Window,
        RopeTheta = value.RopeTheta,
        RopeDim = value.RopeDim,
        OutputBias = value.OutputBias,
        RopeScalingType = value.RopeScaling?.Type,
        RopeScalingFactor = value.RopeScaling?.Factor ?? 0,
        RopeScalingLowFreqFactor = value.RopeScaling?.LowFreqFactor ?? 0,
        RopeScalingHighFreqFactor = value.RopeScaling?.HighFreqFactor ?? 0,
        RopeScalingOriginalMaxPositions = value.RopeScaling?.OriginalMaxPositions ?? 0,
    };
}
