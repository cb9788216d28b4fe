using System.Buffers;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Grpc.Core;
using Headwise.Wire;
using Proto = Headwise.V1;

namespace Headwise.Client;

/// <summary>
/// Forward with Y parsed straight into the caller's buffer, for
/// <see cref="GrpcAttentionClient.ForwardAsync(string, AttentionInput, Memory{float}, CancellationToken)"/>. The generated
/// parser puts Y into a new array per call: at T = 1024 a 3 MB array on the client's large-object heap, fresh pages to
/// fault in, and the gen-2 collections that renew that heap, on a machine whose cores the pass needs.
/// </summary>
internal static class OutputIntoCallerBuffer
{
    /// <summary>The response; <paramref name="InDestination"/>: its output's data was copied into the caller's buffer and
    /// left out of the message.</summary>
    public sealed record Answer(Proto.ForwardResponse Response, bool InDestination);

    private static readonly Marshaller<Proto.ForwardRequest> Requests = Marshallers.Create<Proto.ForwardRequest>(
        (request, context) =>
        {
            context.SetPayloadLength(request.CalculateSize());
            request.WriteTo(context.GetBufferWriter());
            context.Complete();
        },
        context => Proto.ForwardRequest.Parser.ParseFrom(context.PayloadAsReadOnlySequence()));

    /// <summary>Attention.Forward, its answer parsed with Y into <paramref name="destination"/>.</summary>
    public static Method<Proto.ForwardRequest, Answer> Forward(Memory<float> destination) =>
        new(MethodType.Unary, Proto.Attention.Descriptor.FullName, "Forward", Requests, Marshallers.Create<Answer>(
            (_, _) => throw new NotSupportedException("answers are only read"),
            context => Parse(context.PayloadAsReadOnlySequence(), destination)));

    /// <summary>The response in <paramref name="message"/>; an output whose data is exactly as long as
    /// <paramref name="destination"/> is copied into it, anything else is parsed the ordinary way.</summary>
    public static Answer Parse(ReadOnlySequence<byte> message, Memory<float> destination)
    {
        long bytes = (long)destination.Length * sizeof(float);
        if (!NestedBytesField.TryFind(message, Proto.ForwardResponse.OutputFieldNumber, Proto.Tensor.DataFieldNumber, 0, out var field)
            || field.DataLength != bytes)
            return new Answer(Proto.ForwardResponse.Parser.ParseFrom(message), InDestination: false);

        var (response, output) = field.ParseRest(message, Proto.ForwardResponse.Parser, Proto.Tensor.Parser);
        response.Output = output;
        message.Slice(field.DataStart, field.DataLength).CopyTo(MemoryMarshal.AsBytes(destination.Span));
        return new Answer(response, InDestination: true);
    }
}
