using Google.Protobuf;
using Headwise.TestSupport;
using Headwise.V1;

namespace Headwise.SystemTests;

/// <summary>The golden case's input as a plain gRPC client sends it: a causal forward of layer 0.</summary>
internal static class GoldenForwardRequest
{
    public static ForwardRequest For(string model, GoldenCase golden)
    {
        var input = new Tensor { Data = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(golden.Input.AsSpan())) };
        input.Shape.Add([golden.Batch, golden.Tokens, golden.Spec.ModelDim]);
        return new ForwardRequest { Model = model, Layer = 0, Input = input, Causal = true };
    }
}
