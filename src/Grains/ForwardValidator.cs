using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>
/// Checks a forward pass against the layer's spec and the silo's limits before any head is called, so that
/// a bad request costs one message and names the field at fault in the same words as the gRPC contract.
/// </summary>
public static class ForwardValidator
{
    public static void Validate(ForwardCommand command, AttentionSpec spec, ForwardLimits limits)
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

        long firstBad = IndexOfNonFinite(FloatBytes.AsFloats(command.Input));
        if (firstBad >= 0)
            throw Invalid($"input.data holds a NaN or infinite value at flat index {firstBad}; attention needs finite inputs.");
    }

    private static long IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i])) return i;
        }
        return -1;
    }

    private static HeadwiseException Invalid(string message) => new(ErrorCode.InvalidArgument, message);

    private static HeadwiseException Exhausted(string message) => new(ErrorCode.ResourceExhausted, message);
}
