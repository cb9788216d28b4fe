namespace Headwise.Contracts;

/// <summary>
/// Everything one head grain owns: its group's projections in the row-vector convention (Q = X·W_Q + b_Q)
/// and its rows of W_O. Floats travel as little-endian float32 bytes, which Orleans copies as one block.
/// </summary>
[GenerateSerializer, Immutable, Alias("headwise.group-weights")]
public sealed record GroupWeights
{
    /// <summary>Which key/value group of the layer this is: query heads Group·g .. Group·g+g−1.</summary>
    [Id(0)] public required int Group { get; init; }
    /// <summary>W_Q: [D × g·dh]</summary>
    [Id(1)] public required byte[] Query { get; init; }
    /// <summary>W_K: [D × dh]</summary>
    [Id(2)] public required byte[] Key { get; init; }
    /// <summary>W_V: [D × dh]</summary>
    [Id(3)] public required byte[] Value { get; init; }
    /// <summary>b_Q: [g·dh], or null when the spec has no bias.</summary>
    [Id(4)] public byte[]? QueryBias { get; init; }
    /// <summary>b_K: [dh], or null.</summary>
    [Id(5)] public byte[]? KeyBias { get; init; }
    /// <summary>b_V: [dh], or null.</summary>
    [Id(6)] public byte[]? ValueBias { get; init; }
    /// <summary>The group's rows of W_O: [g·dh × D].</summary>
    [Id(7)] public required byte[] Output { get; init; }
}

/// <summary>One layer's weights, split by head group, plus the output bias the coordinator keeps.</summary>
[GenerateSerializer, Immutable, Alias("headwise.layer-weights")]
public sealed record LayerWeights
{
    [Id(0)] public required int Layer { get; init; }
    [Id(1)] public required GroupWeights[] Groups { get; init; }
    /// <summary>b_O: [D], or null when the spec has no bias.</summary>
    [Id(2)] public byte[]? OutputBias { get; init; }
}
