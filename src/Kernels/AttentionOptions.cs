namespace Headwise.Kernels;

/// <summary>How scores are scaled and which keys a query sees.</summary>
/// <param name="Scale">Multiplies Q·Kᵀ; usually 1/√dh.</param>
/// <param name="Causal">Query i sees only keys j ≤ i.</param>
/// <param name="Window">When positive, query i sees only keys j &gt; i − Window.</param>
/// <param name="Rotary">RoPE on Q and K at positions 0 … tokens − 1 of each sequence, for kernels that
/// <see cref="IHeadKernel.SupportsRotary"/>; the others take <see cref="IncrementalAttention.Forward"/>.</param>
public readonly record struct AttentionOptions(float Scale, bool Causal, int Window, Rotary Rotary = default)
{
    /// <summary>
    /// The one visibility rule every kernel follows: key j is visible to query i of a sequence of
    /// <paramref name="length"/> valid tokens iff (!causal || j ≤ i) and (window == 0 || j &gt; i − window) and j &lt; length.
    /// </summary>
    public bool IsVisible(int query, int key, int length) =>
        (!Causal || key <= query) && (Window <= 0 || key > query - Window) && key < length;

    /// <summary>
    /// The keys <see cref="IsVisible"/> admits for <paramref name="query"/> always form one contiguous range,
    /// [Start, End), empty when End == Start: the window bounds it below, causality and the length above.
    /// Fast kernels loop over this range instead of testing every key.
    /// </summary>
    public (int Start, int End) VisibleKeyRange(int query, int length)
    {
        int start = Window > 0 ? Math.Max(0, query - Window + 1) : 0;
        int end = Causal ? Math.Min(query + 1, length) : length;
        return (start, Math.Max(start, end));
    }
}
