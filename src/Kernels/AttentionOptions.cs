namespace Headwise.Kernels;

/// <summary>How scores are scaled and which keys a query sees.</summary>
/// <param name="Scale">Multiplies Q·Kᵀ; usually 1/√dh.</param>
/// <param name="Causal">Query i sees only keys j ≤ i.</param>
/// <param name="Window">When positive, query i sees only keys j &gt; i − Window.</param>
public readonly record struct AttentionOptions(float Scale, bool Causal, int Window)
{
    /// <summary>
    /// The one visibility rule every kernel follows: key j is visible to query i of a sequence of
    /// <paramref name="length"/> valid tokens iff (!causal || j ≤ i) && (window == 0 || j &gt; i − window) && j &lt; length.
    /// </summary>
    public bool IsVisible(int query, int key, int length) =>
        (!Causal || key <= query) && (Window <= 0 || key > query - Window) && key < length;
}
