namespace Headwise.Client;

/// <summary>One forward pass: X of shape [batch, tokens, model_dim] and how to mask it.</summary>
public sealed record AttentionInput
{
    /// <summary>X, shape [batch, tokens, model_dim].</summary>
    public required FloatTensor Input { get; init; }

    /// <summary>Which layer of the model to run (0-based).</summary>
    public int Layer { get; init; }

    /// <summary>Query i sees only keys j ≤ i.</summary>
    public bool Causal { get; init; }

    /// <summary>Null, or one valid length per sequence: keys at positions ≥ length are masked.</summary>
    public IReadOnlyList<int>? Lengths { get; init; }

    /// <summary>Also return the softmax probabilities, shape [batch, head_count, tokens, tokens].</summary>
    public bool ReturnAttention { get; init; }

    /// <summary>Let X and Z cross between silos as bfloat16: half the bytes, about 3 significant digits.</summary>
    public bool Bf16Wire { get; init; }

    /// <summary>Also return each head's output before W_O, shape [batch, head_count, tokens, head_dim].</summary>
    public bool ReturnHeadOutputs { get; init; }
}
