using System.Buffers.Binary;
using Headwise.Contracts;

namespace Headwise.Silo.Gateway;

/// <summary>
/// A safetensors file starts with its JSON header's length: an upload that announces a header over
/// Headwise__MaxUploadHeaderBytes is refused on its first 8 bytes, before the header (say 100 MiB of millions of empty
/// tensors) is received, buffered or parsed.
/// </summary>
internal static class UploadHeaderLimit
{
    /// <summary>
    /// INVALID_ARGUMENT when the first 8 bytes of <paramref name="received"/> announce a header longer than any upload may
    /// be (not a safetensors file: random bytes read as a length are huge); RESOURCE_EXHAUSTED when over the header limit.
    /// </summary>
    public static void Check(ReadOnlySpan<byte> received, long maxUploadBytes, long maxHeaderBytes)
    {
        if (received.Length < 8) return;
        ulong length = BinaryPrimitives.ReadUInt64LittleEndian(received);
        if (length > (ulong)maxUploadBytes)
            throw new HeadwiseException(ErrorCode.InvalidArgument,
                $"chunk: the safetensors header length is {length} bytes, more than an upload may carry ({maxUploadBytes}, " +
                "Headwise__MaxUploadBytes); expected a safetensors file.");
        if (length > (ulong)maxHeaderBytes)
            throw new HeadwiseException(ErrorCode.ResourceExhausted,
                $"chunk: the safetensors header length is {length} bytes; this cluster allows at most {maxHeaderBytes} " +
                "(Headwise__MaxUploadHeaderBytes).");
    }
}
