using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using Headwise.Grains.Forward;
using Headwise.V1;
using Headwise.Wire;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Parses a ForwardRequest with its X (input.data) in an array of <see cref="TensorBuffers"/>, rented at its exact
/// length, instead of the new array the generated parser makes for every bytes field. Forward gives the array back once
/// its pass has answered (<see cref="AttentionGateway.Forward"/>), so a silo serving megabyte inputs reuses the same few
/// arrays instead of filling the large-object heap with one per call: that heap is renewed only by gen-2 collections,
/// and at T = 1024 they ran every twenty or so passes and held up the next request's arrival.
/// </summary>
internal static class PooledForwardRequest
{
    /// <summary>The request marshaller of Forward: <paramref name="original"/>'s serializer, this parser.</summary>
    public static Marshaller<ForwardRequest> Marshaller(Marshaller<ForwardRequest> original, TensorBuffers buffers) =>
        new(original.ContextualSerializer, context => Parse(context.PayloadAsReadOnlySequence(), buffers));

    /// <summary>The request in <paramref name="message"/>; an input of at least <see cref="TensorBuffers.MinimumBytes"/>
    /// bytes has its data in an array rented from <paramref name="buffers"/>.</summary>
    public static ForwardRequest Parse(ReadOnlySequence<byte> message, TensorBuffers buffers)
    {
        if (!NestedBytesField.TryFind(message, ForwardRequest.InputFieldNumber, Tensor.DataFieldNumber, TensorBuffers.MinimumBytes, out var field))
            return ForwardRequest.Parser.ParseFrom(message);

        var (request, input) = field.ParseRest(message, ForwardRequest.Parser, Tensor.Parser);
        var data = buffers.Rent((int)field.DataLength);
        message.Slice(field.DataStart, field.DataLength).CopyTo(data);
        input.Data = UnsafeByteOperations.UnsafeWrap(data);
        request.Input = input;
        return request;
    }
}
