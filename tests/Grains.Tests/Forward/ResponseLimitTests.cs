using Headwise.Contracts;
using Headwise.Grains.Forward;

namespace Headwise.Grains.Tests.Forward;

/// <summary>
/// An answer's size follows from the request, so the validator refuses one over Headwise__MaxResponseBytes before any
/// head computes or anything of that size is allocated, with checked arithmetic, at the silo's default limits.
/// </summary>
public class ResponseLimitTests
{
    private static readonly AttentionSpec Gpt2Small = new AttentionSpec { ModelDim = 768, HeadCount = 12 }.Resolve();

    private static ForwardCommand Command(int batch, int tokens, int modelDim, bool attention = false, bool headOutputs = false) => new()
    {
        Batch = batch,
        Tokens = tokens,
        ModelDim = modelDim,
        Input = new byte[(long)batch * tokens * modelDim * sizeof(float)],
        ReturnAttention = attention,
        ReturnHeadOutputs = headOutputs,
    };

    [Fact]
    public void Return_attention_at_the_default_limits_is_refused_before_the_pass()
    {
        // T = 4096, B = 5: 5 × 12 × 4096² float32 = 4 GiB of attention weights, under the default MaxTokens and MaxRequestBytes.
        var limits = new ForwardLimits();
        var error = Assert.Throws<HeadwiseException>(() =>
            InputValidator.Forward(Command(5, limits.MaxTokens, 768, attention: true), Gpt2Small, limits));
        Assert.Equal(ErrorCode.ResourceExhausted, error.Code);
        Assert.StartsWith("return_attention:", error.Message);
        Assert.Contains($"{5L * 12 * 4096 * 4096 * 4 + 5L * 4096 * 768 * 4} bytes", error.Message);
        Assert.Contains($"at most {limits.MaxResponseBytes} (Headwise__MaxResponseBytes)", error.Message);
    }

    [Fact]
    public void The_same_request_without_attention_passes()
    {
        var limits = new ForwardLimits();
        InputValidator.Forward(Command(5, limits.MaxTokens, 768), Gpt2Small, limits);
    }

    [Fact]
    public void Head_outputs_wider_than_the_model_are_refused()
    {
        // Hq·dh may exceed D: 1,024 heads of 64 over D = 64 make per-head outputs 1,024 times X (64 GiB for a 64 MiB X).
        var wide = new AttentionSpec { ModelDim = 64, HeadCount = 1024, HeadDim = 64 }.Resolve();
        var limits = new ForwardLimits();
        var error = Assert.Throws<HeadwiseException>(() =>
            InputValidator.Forward(Command(64, 4096, 64, headOutputs: true), wide, limits));
        Assert.Equal(ErrorCode.ResourceExhausted, error.Code);
        Assert.StartsWith("return_head_outputs:", error.Message);
        Assert.Contains("Headwise__MaxResponseBytes", error.Message);
    }

    [Fact]
    public void Sizes_past_long_are_refused_not_wrapped()
    {
        // With every other limit lifted, B = T = 2^31 − 1 overflows a long in B·H·T²·4: checked arithmetic refuses it
        // instead of wrapping to a small or negative size that would pass.
        var limits = new ForwardLimits { MaxBatch = int.MaxValue, MaxTokens = int.MaxValue, MaxRequestBytes = long.MaxValue, MaxResponseBytes = long.MaxValue - 1 };
        var command = new ForwardCommand { Batch = int.MaxValue, Tokens = int.MaxValue, ModelDim = 768, Input = [], ReturnAttention = true };
        var error = Assert.Throws<HeadwiseException>(() => InputValidator.Forward(command, Gpt2Small, limits));
        Assert.Equal(ErrorCode.ResourceExhausted, error.Code);
        Assert.Contains("more than 2^63 bytes", error.Message);
    }
}
