using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;

namespace Headwise.Contracts;

/// <summary>
/// A parsed safetensors file: an 8-byte little-endian header length N, N bytes of UTF-8 JSON naming each
/// tensor's dtype, shape and byte range, then the data those ranges point into.
/// The parser is strict: anything malformed is an InvalidArgument <see cref="HeadwiseException"/> naming the
/// tensor or field, and nothing is allocated from a size that has not been checked against the input.
/// </summary>
public sealed class SafetensorsFile
{
    /// <summary>The default limit on the JSON header (100 MiB; the Rust reference implementation allows 100 MB).</summary>
    public const long DefaultMaxHeaderBytes = 100 << 20;

    private SafetensorsFile(IReadOnlyDictionary<string, SafetensorsTensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Tensors = tensors;
        Metadata = metadata;
    }

    /// <summary>The tensors by name.</summary>
    public IReadOnlyDictionary<string, SafetensorsTensor> Tensors { get; }

    /// <summary>The header's "__metadata__" map; empty when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The named tensor, or an InvalidArgument error.</summary>
    public SafetensorsTensor Get(string name) =>
        Tensors.TryGetValue(name, out var tensor)
            ? tensor
            : throw HeadwiseException.Invalid($"tensor '{name}' is not in the file.");

    /// <summary>
    /// Parses a whole file held in memory. The tensors' <see cref="SafetensorsTensor.Data"/> are slices of
    /// <paramref name="bytes"/>, so the caller must not change it afterwards.
    /// </summary>
    public static SafetensorsFile Parse(ReadOnlyMemory<byte> bytes, long maxHeaderBytes = DefaultMaxHeaderBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxHeaderBytes);
        ReadOnlySpan<byte> span = bytes.Span;
        if (span.Length < 8)
            throw HeadwiseException.Invalid(
                $"safetensors file has {span.Length} bytes; expected at least 8 (the header length).");
        int headerLength = CheckHeaderLength(BinaryPrimitives.ReadUInt64LittleEndian(span), span.Length, maxHeaderBytes);
        ReadOnlyMemory<byte> header = bytes.Slice(8, headerLength);
        ReadOnlyMemory<byte> data = bytes[(8 + headerLength)..];

        var parsed = ParseHeader(header, data.Length);
        var tensors = new Dictionary<string, SafetensorsTensor>(StringComparer.Ordinal);
        foreach (var range in parsed.Tensors)
            tensors.Add(range.Name, range.WithData(data.Slice((int)range.Begin, (int)(range.End - range.Begin))));
        return new SafetensorsFile(tensors.AsReadOnly(), parsed.Metadata);
    }

    /// <summary>
    /// Parses the JSON header alone, as strictly as <see cref="Parse"/>: every tensor's dtype, shape and byte range
    /// within <paramref name="dataLength"/> bytes of data (<see cref="long.MaxValue"/> when the data is still to come,
    /// as in a streamed upload: the reader then checks each range as the bytes arrive).
    /// </summary>
    public static SafetensorsHeader ParseHeader(ReadOnlyMemory<byte> header, long dataLength)
    {
        if (!Utf8.IsValid(header.Span))
            throw HeadwiseException.Invalid("safetensors header is not valid UTF-8.");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new HeadwiseException(ErrorCode.InvalidArgument,
                $"safetensors header is not valid JSON ({e.Message}); expected an object.", e);
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw HeadwiseException.Invalid($"safetensors header is a JSON {Kind(root)}; expected an object.");

            var names = new HashSet<string>(StringComparer.Ordinal);
            var tensors = new List<SafetensorsRange>();
            var ranges = new List<(long Begin, long End, string Name)>();
            Dictionary<string, string>? metadata = null;
            foreach (JsonProperty property in root.EnumerateObject())
            {
                string name = property.Name;
                if (name == "__metadata__")
                {
                    if (metadata is not null)
                        throw HeadwiseException.Invalid("safetensors header has '__metadata__' twice.");
                    metadata = ParseMetadata(property.Value);
                    continue;
                }
                if (!names.Add(name))
                    throw HeadwiseException.Invalid($"safetensors header names tensor '{name}' twice.");
                var range = ParseEntry(name, property.Value, dataLength);
                tensors.Add(range);
                ranges.Add((range.Begin, range.End, name));
            }
            CheckNoOverlap(ranges);
            return new SafetensorsHeader(tensors,
                (metadata ?? new Dictionary<string, string>(StringComparer.Ordinal)).AsReadOnly());
        }
    }

    /// <summary>Reads and parses a file; its size must fit one array (2 GB).</summary>
    public static async Task<SafetensorsFile> ReadAsync(string path, CancellationToken ct = default)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read,
            bufferSize: 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
        long length = stream.Length;
        try
        {
            if (length > Array.MaxLength)
                throw HeadwiseException.Invalid(
                    $"file is {length} bytes; Headwise reads safetensors files of at most {Array.MaxLength} bytes.");
            // Check the header length against the file before the file's size is allocated.
            if (length >= 8)
            {
                var prefix = new byte[8];
                await stream.ReadExactlyAsync(prefix, ct).ConfigureAwait(false);
                CheckHeaderLength(BinaryPrimitives.ReadUInt64LittleEndian(prefix), length, DefaultMaxHeaderBytes);
                stream.Position = 0;
            }
            var buffer = GC.AllocateUninitializedArray<byte>((int)length);
            await stream.ReadExactlyAsync(buffer, ct).ConfigureAwait(false);
            return Parse(buffer);
        }
        catch (HeadwiseException e)
        {
            throw new HeadwiseException(e.Code, $"{path}: {e.Message}", e);
        }
    }

    /// <summary>The header length as an int, once it is known to be positive, within the limit and the file.</summary>
    internal static int CheckHeaderLength(ulong headerLength, long fileLength, long maxHeaderBytes)
    {
        if (headerLength == 0)
            throw HeadwiseException.Invalid("safetensors header length is 0; expected a JSON object of at least 2 bytes.");
        if (headerLength > (ulong)maxHeaderBytes)
            throw HeadwiseException.Invalid(
                $"safetensors header length is {headerLength} bytes; at most {maxHeaderBytes} are allowed.");
        if (headerLength > (ulong)(fileLength - 8))
            throw HeadwiseException.Invalid(
                $"safetensors header length is {headerLength} bytes, past the end of the file; expected at most {fileLength - 8}.");
        return checked((int)headerLength);
    }

    private static Dictionary<string, string> ParseMetadata(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw HeadwiseException.Invalid(
                $"safetensors '__metadata__' is a JSON {Kind(element)}; expected an object of strings.");
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (JsonProperty entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw HeadwiseException.Invalid(
                    $"safetensors '__metadata__.{entry.Name}' is a JSON {Kind(entry.Value)}; expected a string.");
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw HeadwiseException.Invalid($"safetensors '__metadata__' has key '{entry.Name}' twice.");
        }
        return metadata;
    }

    private static SafetensorsRange ParseEntry(string name, JsonElement entry, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw HeadwiseException.Invalid(
                $"tensor '{name}' is a JSON {Kind(entry)}; expected an object with dtype, shape and data_offsets.");
        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (JsonProperty field in entry.EnumerateObject())
        {
            ref JsonElement? slot = ref dtypeElement;
            switch (field.Name)
            {
                case "dtype": slot = ref dtypeElement; break;
                case "shape": slot = ref shapeElement; break;
                case "data_offsets": slot = ref offsetsElement; break;
                default:
                    throw HeadwiseException.Invalid(
                        $"tensor '{name}' has an unknown field '{field.Name}'; expected only dtype, shape and data_offsets.");
            }
            if (slot is not null)
                throw HeadwiseException.Invalid($"tensor '{name}' has field '{field.Name}' twice.");
            slot = field.Value;
        }
        if (dtypeElement is not { } dtypeJson)
            throw HeadwiseException.Invalid($"tensor '{name}' has no 'dtype'; expected a string such as \"F32\".");
        if (shapeElement is not { } shapeJson)
            throw HeadwiseException.Invalid($"tensor '{name}' has no 'shape'; expected an array of non-negative integers.");
        if (offsetsElement is not { } offsetsJson)
            throw HeadwiseException.Invalid($"tensor '{name}' has no 'data_offsets'; expected [begin, end].");

        if (dtypeJson.ValueKind != JsonValueKind.String)
            throw HeadwiseException.Invalid($"tensor '{name}' has a 'dtype' that is a JSON {Kind(dtypeJson)}; expected a string such as \"F32\".");
        SafetensorsDType dtype = SafetensorsDTypes.Parse(dtypeJson.GetString()!, name);

        if (shapeJson.ValueKind != JsonValueKind.Array)
            throw HeadwiseException.Invalid($"tensor '{name}' has a 'shape' that is a JSON {Kind(shapeJson)}; expected an array of non-negative integers.");
        int rank = shapeJson.GetArrayLength();
        if (rank > MaxRank)
            throw HeadwiseException.Invalid($"tensor '{name}' has {rank} dimensions; at most {MaxRank} are allowed.");
        var shape = new long[rank];
        long elementCount = 1;
        int axis = 0;
        foreach (JsonElement dim in shapeJson.EnumerateArray())
        {
            shape[axis] = NonNegativeInteger(dim, name, $"shape[{axis}]");
            elementCount = MultiplyOrThrow(elementCount, shape[axis], name, "the product of its shape");
            axis++;
        }

        if (offsetsJson.ValueKind != JsonValueKind.Array || offsetsJson.GetArrayLength() != 2)
            throw HeadwiseException.Invalid(
                $"tensor '{name}' has 'data_offsets' {Describe(offsetsJson)}; expected an array [begin, end] of two integers.");
        long begin = NonNegativeInteger(offsetsJson[0], name, "data_offsets[0]");
        long end = NonNegativeInteger(offsetsJson[1], name, "data_offsets[1]");
        if (begin > end)
            throw HeadwiseException.Invalid($"tensor '{name}' has data_offsets [{begin}, {end}]; expected begin <= end.");
        if (end > dataLength)
            throw HeadwiseException.Invalid(
                $"tensor '{name}' has data_offsets [{begin}, {end}] past the end of the data; expected end <= {dataLength}.");
        long byteCount = MultiplyOrThrow(elementCount, dtype.ByteSize(), name, "its byte size");
        if (end - begin != byteCount)
            throw HeadwiseException.Invalid(
                $"tensor '{name}' has {end - begin} bytes (data_offsets [{begin}, {end}]); expected {byteCount} " +
                $"for shape {SafetensorsTensor.FormatShape(shape)} of {dtype}.");

        return new SafetensorsRange(name, dtype, shape, elementCount, begin, end);
    }

    /// <summary>Two tensors may not share bytes; empty tensors share nothing.</summary>
    private static void CheckNoOverlap(List<(long Begin, long End, string Name)> ranges)
    {
        ranges.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        (long Begin, long End, string Name)? previous = null;
        foreach (var range in ranges)
        {
            if (range.Begin == range.End)
                continue;
            if (previous is { } p && range.Begin < p.End)
                throw HeadwiseException.Invalid(
                    $"tensor '{range.Name}' (data_offsets [{range.Begin}, {range.End}]) overlaps tensor '{p.Name}' " +
                    $"([{p.Begin}, {p.End}]); expected disjoint byte ranges.");
            if (previous is null || range.End > previous.Value.End)
                previous = range;
        }
    }

    private const int MaxRank = 64;

    private static long NonNegativeInteger(JsonElement element, string tensor, string field)
    {
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out long value))
            throw HeadwiseException.Invalid(
                $"tensor '{tensor}' has {field} = {Describe(element)}; expected a non-negative integer.");
        if (value < 0)
            throw HeadwiseException.Invalid($"tensor '{tensor}' has {field} = {value}; expected a non-negative integer.");
        return value;
    }

    private static long MultiplyOrThrow(long a, long b, string tensor, string what)
    {
        try
        {
            return checked(a * b);
        }
        catch (OverflowException)
        {
            throw HeadwiseException.Invalid($"tensor '{tensor}': {what} overflows a 64-bit integer; expected a realistic shape.");
        }
    }

    private static string Kind(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => "value",
    };

    /// <summary>A short rendering of a JSON value for an error message.</summary>
    private static string Describe(JsonElement element)
    {
        string text = element.GetRawText();
        return text.Length <= 40 ? text : text[..40] + "…";
    }
}
