using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>The answer to a forward pass.</summary>
public sealed record AttentionOutput
{
    /// <summary>Y = Concat(Z)·W_O + b_O, shape [batch, tokens, model_dim].</summary>
    public required FloatTensor Output { get; init; }

    /// <summary>One report per head group: where it ran, on which kernel, how long it took.</summary>
    public required IReadOnlyList<HeadReport> Heads { get; init; }

    /// <summary>Per silo: head groups, bytes of X sent to it and bytes of Z received from it.</summary>
    public IReadOnlyList<SiloTraffic> Silos { get; init; } = [];

    /// <summary>Softmax probabilities [batch, head_count, tokens, tokens] when asked for, else null.</summary>
    public FloatTensor? Attention { get; init; }

    /// <summary>Per-head Z [batch, head_count, tokens, head_dim] when asked for, else null.</summary>
    public FloatTensor? HeadOutputs { get; init; }

    /// <summary>Where the output projection of the remote heads ran: on their own silos (partial sums of W_O, sent back
    /// one per silo) or on the coordinator (their Z gathered there).</summary>
    public OutputProjectionMode OutputProjection { get; init; }

    /// <summary>W3C trace id of the forward pass, to look it up in a trace viewer.</summary>
    public required string TraceId { get; init; }
}
