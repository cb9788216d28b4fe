using Headwise.Contracts;

namespace Headwise.Grains.Forward;

/// <summary>
/// Checks a forward pass or a decode step against the layer's spec and the silo's limits before any head is called, so
/// that a bad request costs no message and names the field at fault in the same words as the gRPC contract. Both
/// coordinators (<see cref="ForwardCoordinatorGrain"/>, <see cref="DecodeSessionGrain"/>) call it.
/// </summary>
public static class InputValidator
{
    public static void Forward(ForwardCommand command, AttentionSpec spec, ForwardLimits limits)
    {
        ForwardShape(command, spec, limits);
        RequireUsable(command.Input, index => $"input.data holds a NaN or infinite value at flat index {index}; attention needs finite inputs.");
    }

    /// <summary>
    /// <see cref="Forward"/> without the scan of X's values: for a pass planned again (another spec may hold now) whose X
    /// was scanned when it arrived.
    /// </summary>
    public static void ForwardShape(ForwardCommand command, AttentionSpec spec, ForwardLimits limits)
    {
        if (command.Batch < 1)
            throw Invalid($"input.shape[0] (batch) is {command.Batch}; it must be at least 1.");
        if (command.Tokens < 1)
            throw Invalid($"input.shape[1] (tokens) is {command.Tokens}; it must be at least 1.");
        if (command.Batch > limits.MaxBatch)
            throw Exhausted($"input.shape[0] (batch) is {command.Batch}; this cluster allows at most {limits.MaxBatch} (Headwise__MaxBatch).");
        if (command.Tokens > limits.MaxTokens)
            throw Exhausted($"input.shape[1] (tokens) is {command.Tokens}; this cluster allows at most {limits.MaxTokens} (Headwise__MaxTokens).");
        if (command.Input.LongLength > limits.MaxRequestBytes)
            throw Exhausted($"input.data has {command.Input.LongLength} bytes; this cluster allows at most {limits.MaxRequestBytes} (Headwise__MaxRequestBytes).");

        if (command.ModelDim != spec.ModelDim)
            throw Invalid($"input.shape[2] (model_dim) is {command.ModelDim}; the model's model_dim is {spec.ModelDim}.");
        CheckResponseSize(command, spec, limits);
        long expected = (long)command.Batch * command.Tokens * spec.ModelDim * sizeof(float);
        if (command.Input.LongLength != expected)
            throw Invalid($"input.data has {command.Input.LongLength} bytes; shape [{command.Batch}, {command.Tokens}, {spec.ModelDim}] in float32 needs {expected}.");

        if (command.Lengths.Length != 0)
        {
            if (command.Lengths.Length != command.Batch)
                throw Invalid($"lengths has {command.Lengths.Length} values; give none or one per sequence ({command.Batch}).");
            for (int b = 0; b < command.Lengths.Length; b++)
            {
                int length = command.Lengths[b];
                if (length < 1 || length > command.Tokens)
                    throw Invalid($"lengths[{b}] is {length}; it must be in 1..{command.Tokens} (the token count).");
            }
        }
    }

    /// <summary>A step of the session <paramref name="session"/>, which has seen <paramref name="position"/> tokens of its
    /// <paramref name="maxTokens"/> with batch <paramref name="sessionBatch"/> (0 before its first step).</summary>
    public static void DecodeStep(DecodeCommand command, AttentionSpec spec, ForwardLimits limits, string session, string model,
        int sessionBatch, int position, int maxTokens)
    {
        if (command.ModelDim != spec.ModelDim)
            throw Invalid($"input.shape[2] is {command.ModelDim}; model '{model}' has model_dim {spec.ModelDim}.");
        if (command.Batch < 1 || command.Batch > limits.MaxBatch)
            throw Invalid($"input.shape[0] (batch) is {command.Batch}; it must be in 1..{limits.MaxBatch}.");
        if (sessionBatch != 0 && command.Batch != sessionBatch)
            throw Invalid($"input.shape[0] (batch) is {command.Batch}; session '{session}' started with batch {sessionBatch}.");
        if (command.Tokens < 1)
            throw Invalid($"input.shape[1] (new tokens) is {command.Tokens}; it must be at least 1.");
        if ((long)position + command.Tokens > maxTokens)
            throw Exhausted($"session '{session}' has seen {position} of its max_tokens {maxTokens}; {command.Tokens} more do not fit. Open a session with a larger max_tokens.");
        long expected = (long)command.Batch * command.Tokens * spec.ModelDim * sizeof(float);
        if (command.Input.Length != expected)
            throw Invalid($"input has {command.Input.Length} bytes; shape [{command.Batch}, {command.Tokens}, {spec.ModelDim}] float32 needs {expected}.");
        RequireUsable(command.Input, index => $"input has a non-finite value at flat index {index}.");
    }

    // X's values: finite, and small enough that X·W cannot overflow float32 (the first that is not is named).
    private static void RequireUsable(byte[] input, Func<long, string> nonFinite)
    {
        var values = FloatBytes.AsFloats(input);
        long firstBad = IndexOfUnusable(values);
        if (firstBad >= 0)
            throw float.IsFinite(values[(int)firstBad])
                ? Invalid(TooLarge("input.data", values[(int)firstBad], firstBad))
                : Invalid(nonFinite(firstBad));
    }

    /// <summary>
    /// The answer's size is known from the request alone: refuse it before any head computes, and before anything of
    /// that size is allocated. Attention weights are B·H·T² floats, 4 GiB for 12 heads at B = 5 and T = 4096.
    /// </summary>
    /// <summary>Bytes of the pass's answer (Y plus what it asks for), long.MaxValue past 2^63.</summary>
    public static long ResponseBytes(ForwardCommand command, AttentionSpec spec)
    {
        long rows = (long)command.Batch * command.Tokens;
        try
        {
            checked
            {
                long output = rows * spec.ModelDim * sizeof(float);
                long attention = command.ReturnAttention ? rows * spec.HeadCount * command.Tokens * sizeof(float) : 0;
                long headOutputs = command.ReturnHeadOutputs ? rows * spec.HeadCount * spec.HeadDim * sizeof(float) : 0;
                return output + attention + headOutputs;
            }
        }
        catch (OverflowException)
        {
            return long.MaxValue;
        }
    }

    private static void CheckResponseSize(ForwardCommand command, AttentionSpec spec, ForwardLimits limits)
    {
        long total = ResponseBytes(command, spec);
        if (total <= limits.MaxResponseBytes) return;

        string field = command.ReturnAttention ? "return_attention" : command.ReturnHeadOutputs ? "return_head_outputs" : "input.shape";
        var parts = new List<string> { $"output [{command.Batch}, {command.Tokens}, {spec.ModelDim}]" };
        if (command.ReturnAttention) parts.Add($"attention [{command.Batch}, {spec.HeadCount}, {command.Tokens}, {command.Tokens}]");
        if (command.ReturnHeadOutputs) parts.Add($"head outputs [{command.Batch}, {spec.HeadCount}, {command.Tokens}, {spec.HeadDim}]");
        throw Exhausted($"{field}: the answer would hold {(total == long.MaxValue ? "more than 2^63" : total.ToString(System.Globalization.CultureInfo.InvariantCulture))} bytes " +
            $"({string.Join(" + ", parts)} in float32); this cluster allows at most {limits.MaxResponseBytes} (Headwise__MaxResponseBytes). " +
            "Send fewer sequences or tokens per call.");
    }

    /// <summary>
    /// Largest input magnitude a pass accepts: √(float32's largest), 1.8e19. Attention scores are products of two
    /// projections of X, so they grow with |x|²; past this bound Q·Kᵀ overflows float32 for any weights of order one, and
    /// the kernels' softmax then gives NaN or meaningless weights. Real activations are many orders of magnitude smaller.
    /// </summary>
    public static readonly float MaxInputMagnitude = MathF.Sqrt(float.MaxValue);

    // NaN, ±infinity, or a finite value past MaxInputMagnitude (NaN fails the comparison, hence the negation).
    private static long IndexOfUnusable(ReadOnlySpan<float> values) => Kernels.MagnitudeScan.IndexOfAbove(values, MaxInputMagnitude);

    private static string TooLarge(string field, float value, long index) =>
        $"{field} holds {value.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)} at flat index {index}; values beyond " +
        $"±{MaxInputMagnitude.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)} (the square root of float32's largest) " +
        "overflow float32 in Q·Kᵀ; scale the input down.";

    private static HeadwiseException Invalid(string message) => new(ErrorCode.InvalidArgument, message);

    private static HeadwiseException Exhausted(string message) => new(ErrorCode.ResourceExhausted, message);
}
