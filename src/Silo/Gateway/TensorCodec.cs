using System.Runtime.InteropServices;
using Google.Protobuf;
using Headwise.Contracts;
using Headwise.V1;

namespace Headwise.Silo.Gateway;

/// <summary>Reads request tensors into float32 bytes (F32, F16, BF16) and writes F32 response tensors.</summary>
internal static class TensorCodec
{
    /// <summary>
    /// The tensor's values as little-endian float32 bytes, after checking its rank and that its data length
    /// matches shape × dtype; <paramref name="field"/> names it in errors.
    /// </summary>
    public static byte[] ToFloat32Bytes(Tensor? tensor, int rank, string field, long maxBytes)
    {
        if (tensor is null)
            throw Invalid($"{field} is missing.");
        string shape = $"[{string.Join(", ", tensor.Shape)}]";
        if (tensor.Shape.Count != rank)
            throw Invalid($"{field}.shape is {shape}; it must have {rank} dimensions.");
        long count = 1;
        for (int i = 0; i < tensor.Shape.Count; i++)
        {
            long size = tensor.Shape[i];
            if (size < 0 || size > int.MaxValue)
                throw Invalid($"{field}.shape[{i}] is {size}; it must be in 0..{int.MaxValue}.");
            count *= size;
            if (count > int.MaxValue)
                throw new HeadwiseException(ErrorCode.ResourceExhausted, $"{field}.shape {shape} holds more than {int.MaxValue} values.");
        }
        if (tensor.Data.Length > maxBytes)
            throw new HeadwiseException(ErrorCode.ResourceExhausted,
                $"{field}.data has {tensor.Data.Length} bytes; this cluster allows at most {maxBytes} (Headwise__MaxRequestBytes).");

        int elementSize = tensor.Dtype switch
        {
            DType.F32 => 4,
            DType.F16 or DType.Bf16 => 2,
            _ => throw Invalid($"{field}.dtype is {(int)tensor.Dtype}; use DTYPE_F32, DTYPE_F16 or DTYPE_BF16."),
        };
        if (tensor.Data.Length != count * elementSize)
            throw Invalid($"{field}.data has {tensor.Data.Length} bytes; shape {shape} in {DTypeName(tensor.Dtype)} needs {count * elementSize}.");

        var source = tensor.Data.Span;
        if (tensor.Dtype == DType.F32)
        {
            // A parsed message's bytes are an array of their own that nothing writes to again: pass it on without a
            // copy (X is megabytes, and the pass treats it as immutable).
            return MemoryMarshal.TryGetArray(tensor.Data.Memory, out var whole) && whole.Offset == 0 && whole.Count == whole.Array!.Length
                ? whole.Array
                : source.ToArray();
        }

        var result = new byte[count * sizeof(float)];
        var destination = FloatBytes.AsFloats(result.AsSpan());
        if (tensor.Dtype == DType.F16)
        {
            var halves = MemoryMarshal.Cast<byte, Half>(source);
            for (int i = 0; i < halves.Length; i++) destination[i] = (float)halves[i];
        }
        else
        {
            Bf16.Decode(source, destination);
        }
        return result;
    }

    public static Tensor FromFloat32Bytes(byte[] data, params long[] shape)
    {
        // The result array is never touched again, so the message may wrap it instead of copying.
        var tensor = new Tensor { Dtype = DType.F32, Data = UnsafeByteOperations.UnsafeWrap(data) };
        tensor.Shape.Add(shape);
        return tensor;
    }

    private static string DTypeName(DType dtype) => dtype switch
    {
        DType.F16 => "DTYPE_F16",
        DType.Bf16 => "DTYPE_BF16",
        _ => "DTYPE_F32",
    };

    private static HeadwiseException Invalid(string message) => new(ErrorCode.InvalidArgument, message);
}
