namespace Headwise.Kernels;

/// <summary>
/// Computes attention for one head group and the output projection that follows the concatenation.
/// Implementations differ in speed only; <see cref="ReferenceKernel"/> defines the numbers.
/// </summary>
public interface IHeadKernel
{
    /// <summary>Short name reported per head ("reference", "simd", …).</summary>
    string Name { get; }

    /// <summary>Whether <see cref="Attend"/> applies <see cref="AttentionOptions.Rotary"/>; a kernel that does not throws on it.</summary>
    bool SupportsRotary => false;

    /// <summary>
    /// Readies a head group's weights for this kernel (the SIMD kernel packs W_Q, W_K, W_V into one GEMM
    /// operand; the GPU kernel copies them to the device), so the first <see cref="Attend"/> does not pay for
    /// it. Optional: <see cref="Attend"/> prepares on first use. What is prepared lives as long as
    /// <paramref name="weights"/>; the weights must not change after this call or after the first Attend.
    /// </summary>
    void Prepare(HeadGroupWeights weights) { }

    /// <summary>
    /// Begins a pass of one head group computed in pieces (<see cref="HeadGroupPieces"/>). A kernel without its own gathers
    /// the rows and runs <see cref="Attend"/> once.
    /// </summary>
    HeadGroupPieces BeginPieces(HeadGroupWeights weights, int batch, int tokens, ReadOnlySpan<int> lengths, AttentionOptions options) =>
        new WholeGroupPieces(this, weights, batch, tokens, lengths, options);

    /// <summary>
    /// Z = softmax(Q·Kᵀ·scale + mask)·V for every query head of the group, per sequence of the batch.
    /// A query row with no visible key gives zeros.
    /// </summary>
    /// <param name="input">x: [batch, tokens, D]</param>
    /// <param name="lengths">[batch] valid tokens per sequence (keys at or past it are masked), or empty for all.</param>
    /// <param name="output">z: [batch, tokens, g·dh] — query head k of the group in columns k·dh..(k+1)·dh.</param>
    /// <param name="attention">[batch, g, tokens, tokens] softmax probabilities, or empty when not wanted.</param>
    void Attend(ReadOnlySpan<float> input, int batch, int tokens, ReadOnlySpan<int> lengths,
        HeadGroupWeights weights, AttentionOptions options, Span<float> output, Span<float> attention);

    /// <summary>
    /// <see cref="Attend"/> of one sequence, causal or not as <paramref name="options"/> say, that also hands back the
    /// sequence's K and V rows (K after RoPE at positions 0 …): what a decode session's cache keeps after a prefill. A
    /// kernel without its own projects K and V again.
    /// </summary>
    /// <param name="keys">K: [tokens, dh]</param>
    /// <param name="values">V: [tokens, dh]</param>
    void AttendKeepingKeys(ReadOnlySpan<float> input, int tokens, HeadGroupWeights weights, AttentionOptions options,
        Span<float> output, Span<float> keys, Span<float> values)
    {
        var shape = weights.Shape;
        KernelArguments.CheckKeys(tokens, shape, keys, values);
        Attend(input, 1, tokens, [], weights, options, output, []);
        Project(input, tokens, shape.ModelDim, weights.Key, shape.HeadDim, weights.KeyBias, keys);
        Project(input, tokens, shape.ModelDim, weights.Value, shape.HeadDim, weights.ValueBias, values);
        options.Rotary.Apply(keys, tokens, 1, shape.HeadDim, 0);
    }

    /// <summary>y = x·W + b.</summary>
    /// <param name="input">x: [rows, inner]</param>
    /// <param name="weights">W: [inner, outer]</param>
    /// <param name="bias">b: [outer], or empty for none.</param>
    /// <param name="output">y: [rows, outer]</param>
    void Project(ReadOnlySpan<float> input, int rows, int inner, ReadOnlySpan<float> weights, int outer,
        ReadOnlySpan<float> bias, Span<float> output);
}
