using System.Buffers.Binary;
using System.Text.Json;
using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>Where one tensor's bytes lie: a shard file, the absolute byte offset of its first used element, its dtype.</summary>
internal sealed record ShardSlice(PlannedTensor Plan, string ShardPath, long FileOffset, SafetensorsDType DType)
{
    public long SourceBytes => Plan.ElementCount * DType.ByteSize();
}

/// <summary>
/// A checkpoint's safetensors: model.safetensors.index.json's weight_map across shards, or one model.safetensors. Only the
/// headers of shards that hold a wanted tensor are read (8 bytes and the JSON); the data stays on disk until the upload
/// maps it.
/// </summary>
internal sealed class HuggingFaceShards
{
    public const string IndexFile = "model.safetensors.index.json", SingleFile = "model.safetensors";

    private readonly string _directory;
    private readonly IReadOnlyDictionary<string, string> _weightMap; // tensor → shard file name
    private readonly string _source;                                 // what named the shard, for messages
    private readonly Dictionary<string, (Dictionary<string, SafetensorsRange> Tensors, long DataStart)> _headers = new(StringComparer.Ordinal);

    private HuggingFaceShards(string directory, IReadOnlyDictionary<string, string> weightMap, string source)
    {
        _directory = directory;
        _weightMap = weightMap;
        _source = source;
    }

    public bool Contains(string tensor) => _weightMap.ContainsKey(tensor);

    public static HuggingFaceShards Open(string directory)
    {
        string index = Path.Combine(directory, IndexFile);
        if (File.Exists(index)) return new HuggingFaceShards(directory, ReadIndex(index), IndexFile);
        string single = Path.Combine(directory, SingleFile);
        if (!File.Exists(single))
            throw Invalid($"checkpoint directory '{directory}' has neither {IndexFile} nor {SingleFile}.");
        var (tensors, _) = ReadHeader(single);
        return new HuggingFaceShards(directory, tensors.Keys.ToDictionary(t => t, _ => SingleFile, StringComparer.Ordinal), SingleFile);
    }

    /// <summary>The shard and byte offset of <paramref name="plan"/>'s elements, checked: present, float-typed, shaped as the config says.</summary>
    public ShardSlice Locate(PlannedTensor plan, string configFields)
    {
        if (!_weightMap.TryGetValue(plan.Source, out var shard))
            throw Invalid($"tensor '{EchoedValue.Of(plan.Source)}' is not in {(_source == IndexFile ? IndexFile + "'s weight_map" : _source)}; " +
                $"expected {Shape(plan.SourceShape)} ({configFields}).");
        string path = Path.Combine(_directory, shard);
        if (!_headers.TryGetValue(shard, out var header))
        {
            if (!File.Exists(path))
                throw Invalid($"shard '{EchoedValue.Of(shard)}', which {IndexFile} names for tensor '{EchoedValue.Of(plan.Source)}', is not in '{_directory}'.");
            _headers[shard] = header = ReadHeader(path);
        }
        if (!header.Tensors.TryGetValue(plan.Source, out var range))
            throw Invalid($"tensor '{EchoedValue.Of(plan.Source)}' is not in shard '{EchoedValue.Of(shard)}', where {IndexFile} says it is.");
        if (range.DType is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16))
            throw Invalid($"tensor '{EchoedValue.Of(plan.Source)}' has dtype {range.DType}; expected F32, F16 or BF16.");
        if (!range.Shape.AsSpan().SequenceEqual(plan.SourceShape))
            throw Invalid($"tensor '{EchoedValue.Of(plan.Source)}' has shape {Shape(range.Shape)}; " +
                $"config.json ({configFields}) expects {Shape(plan.SourceShape)}.");
        return new ShardSlice(plan, path, header.DataStart + range.Begin + plan.ElementOffset * range.DType.ByteSize(), range.DType);
    }

    private static IReadOnlyDictionary<string, string> ReadIndex(string path)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            if (!document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw Invalid($"{IndexFile} has no weight_map object.");
            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                string? shard = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString() : null;
                // A shard is a file beside the index: a path elsewhere is refused, not followed.
                if (string.IsNullOrEmpty(shard) || shard != Path.GetFileName(shard) || shard is "." or "..")
                    throw Invalid($"{IndexFile}: weight_map['{EchoedValue.Of(entry.Name)}'] is {entry.Value.GetRawText()}; expected a file name in the checkpoint directory.");
                weightMap[entry.Name] = shard;
            }
            return weightMap;
        }
        catch (JsonException e)
        {
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"{IndexFile} is not valid JSON ({e.Message}).", e);
        }
    }

    /// <summary>A shard's tensors and where its data begins, from its first 8 + N bytes.</summary>
    private static (Dictionary<string, SafetensorsRange> Tensors, long DataStart) ReadHeader(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> prefix = stackalloc byte[8];
        if (file.Length < 8 || file.Read(prefix) != 8)
            throw Invalid($"shard '{Path.GetFileName(path)}' has {file.Length} bytes; a safetensors file starts with an 8-byte header length.");
        ulong length = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (length > (ulong)Math.Min(SafetensorsFile.DefaultMaxHeaderBytes, file.Length - 8))
            throw Invalid($"shard '{Path.GetFileName(path)}' declares a {length}-byte header; the file has {file.Length} bytes.");
        var header = new byte[(int)length];
        file.ReadExactly(header);
        long dataStart = 8 + (long)length;
        var parsed = SafetensorsFile.ParseHeader(header, file.Length - dataStart);
        return (parsed.Tensors.ToDictionary(t => t.Name, t => t, StringComparer.Ordinal), dataStart);
    }

    private static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    private static HeadwiseException Invalid(string message) => new(ErrorCode.InvalidArgument, message);
}
