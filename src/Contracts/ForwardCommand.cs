namespace Headwise.Contracts;

/// <summary>One forward pass of one layer, as the coordinator receives it.</summary>
[GenerateSerializer, Immutable, Alias("headwise.forward-command")]
public sealed record ForwardCommand
{
    /// <summary>B: sequences in the batch.</summary>
    [Id(0)] public required int Batch { get; init; }
    /// <summary>T: tokens per sequence.</summary>
    [Id(1)] public required int Tokens { get; init; }
    /// <summary>X: [B, T, D] float32, little-endian.</summary>
    [Id(2)] public required byte[] Input { get; init; }
    /// <summary>Query i sees only keys j ≤ i.</summary>
    [Id(3)] public bool Causal { get; init; }
    /// <summary>Empty, or one valid length per sequence: keys at positions ≥ length are masked.</summary>
    [Id(4)] public int[] Lengths { get; init; } = [];
    /// <summary>Return the softmax probabilities [B, Hq, T, T].</summary>
    [Id(5)] public bool ReturnAttention { get; init; }
    /// <summary>Return each head's Z before W_O: [B, Hq, T, dh].</summary>
    [Id(6)] public bool ReturnHeadOutputs { get; init; }
    /// <summary>D as the caller shaped X; checked against the model's spec.</summary>
    [Id(7)] public required int ModelDim { get; init; }
    /// <summary>Let X and Z cross between silos as bfloat16 (half the bytes, about 3 significant digits).</summary>
    [Id(8)] public bool Bf16Wire { get; init; }
}

/// <summary>The answer to a <see cref="ForwardCommand"/>.</summary>
[GenerateSerializer, Immutable, Alias("headwise.forward-result")]
public sealed record ForwardResult
{
    /// <summary>Y: [B, T, D] float32 bytes.</summary>
    [Id(0)] public required byte[] Output { get; init; }
    [Id(1)] public required HeadReport[] Heads { get; init; }
    /// <summary>[B, Hq, T, T] float32 bytes, when asked for.</summary>
    [Id(2)] public byte[]? Attention { get; init; }
    /// <summary>[B, Hq, T, dh] float32 bytes, when asked for.</summary>
    [Id(3)] public byte[]? HeadOutputs { get; init; }
    /// <summary>The W3C trace id of the forward pass.</summary>
    [Id(4)] public string TraceId { get; init; } = "";
    /// <summary>D: the last dimension of <see cref="Output"/>.</summary>
    [Id(5)] public required int ModelDim { get; init; }
    /// <summary>Hq: the second dimension of <see cref="Attention"/> and <see cref="HeadOutputs"/>.</summary>
    [Id(6)] public required int HeadCount { get; init; }
    /// <summary>dh: the last dimension of <see cref="HeadOutputs"/>.</summary>
    [Id(7)] public required int HeadDim { get; init; }
    /// <summary>Per silo: head groups, bytes sent and received.</summary>
    [Id(8)] public SiloTraffic[] Silos { get; init; } = [];
    /// <summary>Where the remote heads' W_O ran: on their silos (partial sums) or here (gathered Z).</summary>
    [Id(9)] public OutputProjectionMode OutputProjection { get; init; }
}
