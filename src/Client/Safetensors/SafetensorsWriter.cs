using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text;
using System.Text.Json;

namespace Headwise.Contracts;

/// <summary>One tensor to write: raw little-endian, row-major bytes of <paramref name="DType"/>.</summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, long[] Shape, ReadOnlyMemory<byte> Data)
{
    /// <summary>A float32 tensor; the product of <paramref name="shape"/> must be the number of values (empty shape = scalar).</summary>
    public static SafetensorsEntry F32(string name, ReadOnlySpan<float> values, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = SafetensorsTensor.SaturatingProduct(shape, 1);
        if (count != values.Length)
            throw HeadwiseException.Invalid(
                $"tensor '{name}' has {values.Length} values; expected shape {SafetensorsTensor.FormatShape(shape)} " +
                "to hold exactly that many (non-negative dimensions, empty = scalar).");
        return new SafetensorsEntry(name, SafetensorsDType.F32, shape, FloatBytes.ToBytes(values));
    }
}

/// <summary>
/// Writes safetensors files: the header JSON (metadata first, then the tensors in the order given) padded with
/// spaces to a multiple of 8 bytes, then the tensors' bytes back to back in the same order.
/// </summary>
public static class SafetensorsWriter
{
    public static void Write(Stream stream, IEnumerable<SafetensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var (header, entries) = BuildHeader(tensors, metadata);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (var entry in entries)
            stream.Write(entry.Data.Span);
    }

    public static byte[] ToBytes(IEnumerable<SafetensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var (header, entries) = BuildHeader(tensors, metadata);
        long total = 8L + header.Length;
        foreach (var entry in entries)
            total += entry.Data.Length;
        if (total > Array.MaxLength)
            throw HeadwiseException.Invalid($"safetensors file would be {total} bytes; at most {Array.MaxLength} fit in one array, use Write with a stream.");
        var bytes = GC.AllocateUninitializedArray<byte>((int)total);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        int offset = 8 + header.Length;
        foreach (var entry in entries)
        {
            entry.Data.Span.CopyTo(bytes.AsSpan(offset));
            offset += entry.Data.Length;
        }
        return bytes;
    }

    /// <summary>The padded header and the validated entries, in order.</summary>
    private static (byte[] Header, List<SafetensorsEntry> Entries) BuildHeader(
        IEnumerable<SafetensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            if (entry is null)
                throw HeadwiseException.Invalid("safetensors entries must not be null.");
            Validate(entry);
            if (!names.Add(entry.Name))
                throw HeadwiseException.Invalid($"tensor '{entry.Name}' is given twice; expected unique names.");
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata)
                {
                    if (key is null || value is null)
                        throw HeadwiseException.Invalid("safetensors metadata keys and values must not be null.");
                    CheckText(key, "metadata key");
                    CheckText(value, $"metadata '{key}'");
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var entry in entries)
            {
                json.WriteStartObject(entry.Name);
                json.WriteString("dtype", entry.DType.SpecName());
                json.WriteStartArray("shape");
                foreach (long dim in entry.Shape)
                    json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + entry.Data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += entry.Data.Length;
            }
            json.WriteEndObject();
        }

        int padded = (buffer.WrittenCount + 7) & ~7;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return (header, entries);
    }

    private static void Validate(SafetensorsEntry entry)
    {
        if (entry.Name is null)
            throw HeadwiseException.Invalid("safetensors tensor name must not be null.");
        CheckText(entry.Name, "tensor name");
        if (entry.Name == "__metadata__")
            throw HeadwiseException.Invalid("tensor name '__metadata__' is reserved for the metadata map; expected another name.");
        if (entry.Shape is null)
            throw HeadwiseException.Invalid($"tensor '{entry.Name}' has no shape; expected an array of non-negative integers.");
        long bytes = SafetensorsTensor.SaturatingProduct(entry.Shape, entry.DType.ByteSize());
        if (bytes < 0)
            throw HeadwiseException.Invalid(
                $"tensor '{entry.Name}' has shape {SafetensorsTensor.FormatShape(entry.Shape)}; expected non-negative dimensions.");
        if (bytes != entry.Data.Length)
            throw HeadwiseException.Invalid(
                $"tensor '{entry.Name}' has {entry.Data.Length} bytes; expected {(bytes == long.MaxValue ? "more than 2^63" : bytes.ToString())} " +
                $"for shape {SafetensorsTensor.FormatShape(entry.Shape)} of {entry.DType}.");
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>A lone surrogate cannot be written as UTF-8, so the header could not hold it.</summary>
    private static void CheckText(string text, string what)
    {
        try
        {
            StrictUtf8.GetByteCount(text);
        }
        catch (EncoderFallbackException)
        {
            throw HeadwiseException.Invalid($"{what} '{text}' is not valid UTF-16 (a lone surrogate); expected text that UTF-8 can encode.");
        }
    }
}
