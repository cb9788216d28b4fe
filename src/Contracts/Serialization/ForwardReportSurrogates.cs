namespace Headwise.Contracts.Serialization;

/// <summary><see cref="HeadReport"/> as Orleans serializes it (the record lives in the Orleans-free Headwise.Client).</summary>
[GenerateSerializer, Immutable, Alias("headwise.head-report")]
public struct HeadReportSurrogate
{
    [Id(0)] public int Group;
    [Id(1)] public int[] Heads;
    [Id(2)] public string Silo;
    [Id(3)] public string Kernel;
    [Id(4)] public double ComputeMs;
    [Id(5)] public double CallMs;
    [Id(6)] public long InputBytes;
    [Id(7)] public long OutputBytes;
    [Id(8)] public int Pieces;
}

/// <summary>Between <see cref="HeadReport"/> and its Orleans wire shape.</summary>
[RegisterConverter]
public sealed class HeadReportConverter : IConverter<HeadReport, HeadReportSurrogate>
{
    public HeadReport ConvertFromSurrogate(in HeadReportSurrogate surrogate) => new()
    {
        Group = surrogate.Group,
        Heads = surrogate.Heads ?? [],
        Silo = surrogate.Silo,
        Kernel = surrogate.Kernel,
        ComputeMs = surrogate.ComputeMs,
        CallMs = surrogate.CallMs,
        InputBytes = surrogate.InputBytes,
        OutputBytes = surrogate.OutputBytes,
        Pieces = surrogate.Pieces,
    };

    public HeadReportSurrogate ConvertToSurrogate(in HeadReport value) => new()
    {
        Group = value.Group,
        Heads = value.Heads,
        Silo = value.Silo,
        Kernel = value.Kernel,
        ComputeMs = value.ComputeMs,
        CallMs = value.CallMs,
        InputBytes = value.InputBytes,
        OutputBytes = value.OutputBytes,
        Pieces = value.Pieces,
    };
}

/// <summary><see cref="SiloTraffic"/> as Orleans serializes it.</summary>
[GenerateSerializer, Immutable, Alias("headwise.silo-traffic")]
public struct SiloTrafficSurrogate
{
    [Id(0)] public string Silo;
    [Id(1)] public int Groups;
    [Id(2)] public long BytesSent;
    [Id(3)] public long BytesReceived;
}

/// <summary>Between <see cref="SiloTraffic"/> and its Orleans wire shape.</summary>
[RegisterConverter]
public sealed class SiloTrafficConverter : IConverter<SiloTraffic, SiloTrafficSurrogate>
{
    public SiloTraffic ConvertFromSurrogate(in SiloTrafficSurrogate surrogate) => new()
    {
        Silo = surrogate.Silo,
        Groups = surrogate.Groups,
        BytesSent = surrogate.BytesSent,
        BytesReceived = surrogate.BytesReceived,
    };

    public SiloTrafficSurrogate ConvertToSurrogate(in SiloTraffic value) => new()
    {
        Silo = value.Silo,
        Groups = value.Groups,
        BytesSent = value.BytesSent,
        BytesReceived = value.BytesReceived,
    };
}
