using Headwise.Kernels;

namespace Headwise.Grains.Tests;

/// <summary>
/// The SIMD kernel behind a seam: tests that must hold or slow a step at a known point (a batch that must form, a
/// cancellation that must arrive first) override one method and call the base.
/// </summary>
internal abstract class DelegatingKernel : IHeadKernel
{
    private readonly SimdKernel _inner = new();
    public virtual string Name => _inner.Name;
    public bool SupportsRotary => _inner.SupportsRotary;
    public void Prepare(HeadGroupWeights weights) => ((IHeadKernel)_inner).Prepare(weights);

    public virtual void Attend(ReadOnlySpan<float> input, int batch, int tokens, ReadOnlySpan<int> lengths, HeadGroupWeights weights,
        AttentionOptions options, Span<float> output, Span<float> attention) =>
        _inner.Attend(input, batch, tokens, lengths, weights, options, output, attention);

    public virtual void Project(ReadOnlySpan<float> input, int rows, int inner, ReadOnlySpan<float> weights, int outer, ReadOnlySpan<float> bias,
        Span<float> output) =>
        _inner.Project(input, rows, inner, weights, outer, bias, output);
}
