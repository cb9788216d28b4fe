using Headwise.Contracts;
using Proto = Headwise.V1;

namespace Headwise.Client;

/// <summary>The caller's buffer for Y, as both clients' ForwardAsync overloads with an output take it.</summary>
internal static class CallerOutput
{
    /// <summary>The first values of <paramref name="output"/> that Y of <paramref name="input"/> fills: Y has X's shape,
    /// [batch, tokens, model_dim].</summary>
    public static Memory<float> Slice(AttentionInput input, Memory<float> output)
    {
        int count = input.Input.Data.Length;
        if (output.Length < count)
            throw new ArgumentException(
                $"output holds {output.Length} values; Y of an input of shape [{string.Join(", ", input.Input.Shape)}] needs {count}.", nameof(output));
        return output[..count];
    }

    /// <summary>Y, already in <paramref name="into"/>, with the shape the server sent.</summary>
    public static FloatTensor Wrap(Memory<float> into, Proto.Tensor? sent)
    {
        if (sent is null) throw new HeadwiseException(ErrorCode.Internal, "the server sent no output tensor.");
        if (sent.Dtype != Proto.DType.F32)
            throw new HeadwiseException(ErrorCode.Internal, $"the server sent a {sent.Dtype} tensor; this SDK reads DTYPE_F32.");
        return new FloatTensor(into, sent.Shape.Select(s => checked((int)s)).ToArray());
    }

    /// <summary>The ordinary pass through <paramref name="client"/>, Y then copied into <paramref name="output"/> (checked
    /// before the call): the Orleans client's buffer overload, and the interface's own for implementations without one.</summary>
    public static async Task<AttentionOutput> ForwardThenCopyAsync(IAttentionClient client, string model, AttentionInput input,
        Memory<float> output, CancellationToken cancellationToken)
    {
        var into = Slice(input, output);
        return CopyInto(await client.ForwardAsync(model, input, cancellationToken), into);
    }

    /// <summary><paramref name="answer"/> with its Y copied into <paramref name="into"/>, which must hold exactly it.</summary>
    public static AttentionOutput CopyInto(AttentionOutput answer, Memory<float> into)
    {
        if (answer.Output.Data.Length != into.Length)
            throw new HeadwiseException(ErrorCode.Internal,
                $"the server answered with output shape [{string.Join(", ", answer.Output.Shape)}]; the input's Y has {into.Length} values.");
        answer.Output.Data.CopyTo(into);
        return answer with { Output = new FloatTensor(into, answer.Output.Shape) };
    }
}
