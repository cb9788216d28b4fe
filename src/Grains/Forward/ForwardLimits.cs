namespace Headwise.Grains.Forward;

/// <summary>Upper bounds on one forward pass, so that no request can exhaust a silo.</summary>
public sealed class ForwardLimits
{
    /// <summary>Most tokens per sequence (Headwise__MaxTokens).</summary>
    public int MaxTokens { get; set; } = 4096;

    /// <summary>Most sequences per request (Headwise__MaxBatch).</summary>
    public int MaxBatch { get; set; } = 64;

    /// <summary>Most bytes of one request's input (Headwise__MaxRequestBytes).</summary>
    public long MaxRequestBytes { get; set; } = 64L << 20;

    /// <summary>
    /// Most bytes of one forward answer: Y plus the attention weights or per-head outputs it asks for
    /// (Headwise__MaxResponseBytes). The silo derives its default from the container's memory.
    /// </summary>
    public long MaxResponseBytes { get; set; } = 512L << 20;

    /// <summary>
    /// Most bytes the forward passes coordinated on one silo may hold at once (Headwise__PassMemoryBytes; see
    /// <see cref="PassMemoryBudget"/>). The silo derives its default from the container's memory.
    /// </summary>
    public long PassMemoryBytes { get; set; } = 4L << 30;
}
