using System.Buffers;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Headwise.Contracts;
using Headwise.Grains.Forward;
using Headwise.V1;

namespace Headwise.Silo.Gateway;

/// <summary>Reads request tensors into float32 bytes (F32, F16, BF16) and writes F32 response tensors.</summary>
internal static class TensorCodec
{
    /// <summary>
    /// The tensor's values as little-endian float32 bytes, after checking its rank and that its data length
    /// matches shape × dtype; <paramref name="field"/> names it in errors.
    /// </summary>
    public static byte[] ToFloat32Bytes(Tensor? tensor, int rank, string field, long maxBytes) =>
        ToFloat32Bytes(tensor, rank, field, maxBytes, buffers: null);

    /// <summary>
    /// As <see cref="ToFloat32Bytes(Tensor?, int, string, long)"/>, for a tensor whose data the caller's parse may have
    /// rented from <paramref name="buffers"/> (<see cref="PooledForwardRequest"/>): F16 or BF16 data is widened into an
    /// array rented there and goes back to the pool at once; F32 data is the result itself.
    /// </summary>
    public static byte[] ToFloat32Bytes(Tensor? tensor, int rank, string field, long maxBytes, TensorBuffers? buffers)
    {
        var (count, elementSize, shape) = CheckShape(tensor, rank, field);
        if (tensor!.Data.Length > maxBytes)
            throw new HeadwiseException(ErrorCode.ResourceExhausted,
                $"{field}.data has {tensor.Data.Length} bytes; this cluster allows at most {maxBytes} (Headwise__MaxRequestBytes).");
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
        var result = buffers?.Rent((int)(count * sizeof(float))) ?? new byte[count * sizeof(float)];
        Widen(source, tensor.Dtype, FloatBytes.AsFloats(result.AsSpan()));
        if (buffers is not null && MemoryMarshal.TryGetArray(tensor.Data.Memory, out var narrow) && narrow.Offset == 0 && narrow.Count == narrow.Array!.Length)
            buffers.Return(narrow.Array);
        return result;
    }

    /// <summary>
    /// As <see cref="ToFloat32Bytes(Tensor?, int, string, long)"/>, but the values are read from a shared-memory range
    /// X is copied out of the range once, into an array of <paramref name="buffers"/>, so the client may overwrite it as soon as the call returns.
    /// X is copied out of the range once, so the client may overwrite it as soon as the call returns.
    /// </summary>
    public static byte[] ToFloat32Bytes(Tensor? tensor, int rank, string field, long maxBytes, SharedMemoryRange range, TensorBuffers buffers)
    {
        var (count, elementSize, shape) = CheckShape(tensor, rank, field);
        if (!tensor!.Data.IsEmpty)
            throw Invalid($"{field}.data has {tensor.Data.Length} bytes and {range.Field} is set too; send X one way, its data empty with {range.Field}.");
        if (range.ByteSize > maxBytes)
            throw new HeadwiseException(ErrorCode.ResourceExhausted,
                $"{range.Field}.byte_size is {range.ByteSize}; this cluster allows at most {maxBytes} (Headwise__MaxRequestBytes).");
        if (range.ByteSize != count * elementSize)
            throw Invalid($"{range.Field}.byte_size is {range.ByteSize}; {field} shape {shape} in {DTypeName(tensor.Dtype)} needs {count * elementSize}.");

        var result = buffers.Rent((int)(count * sizeof(float)));
        if (tensor.Dtype == DType.F32)
        {
            range.Read(result, result.Length);
            return result;
        }
        var narrow = ArrayPool<byte>.Shared.Rent((int)range.ByteSize);
        try
        {
            range.Read(narrow, (int)range.ByteSize);
            Widen(narrow.AsSpan(0, (int)range.ByteSize), tensor.Dtype, FloatBytes.AsFloats(result.AsSpan()));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(narrow);
        }
        return result;
    }

    /// <summary>The tensor's value count and element size after checking its rank, sizes and dtype; and its shape, printed.</summary>
    private static (long Count, int ElementSize, string Shape) CheckShape(Tensor? tensor, int rank, string field)
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
        int elementSize = tensor.Dtype switch
        {
            DType.F32 => 4,
            DType.F16 or DType.Bf16 => 2,
            _ => throw Invalid($"{field}.dtype is {(int)tensor.Dtype}; use DTYPE_F32, DTYPE_F16 or DTYPE_BF16."),
        };
        return (count, elementSize, shape);
    }

    /// <summary>F16 or BF16 <paramref name="source"/> as float32 into <paramref name="destination"/>.</summary>
    private static void Widen(ReadOnlySpan<byte> source, DType dtype, Span<float> destination)
    {
        if (dtype == DType.F16)
        {
            var halves = MemoryMarshal.Cast<byte, Half>(source);
            for (int i = 0; i < halves.Length; i++) destination[i] = (float)halves[i];
        }
        else
        {
            Bf16.Decode(source, destination);
        }
    }

    /// <summary>The shape and dtype of an F32 tensor whose bytes went into shared memory: its data is empty.</summary>
    public static Tensor ShapeOnly(params long[] shape)
    {
        var tensor = new Tensor { Dtype = DType.F32 };
        tensor.Shape.Add(shape);
        return tensor;
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
