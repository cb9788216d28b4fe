using System.Buffers;
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text.Json;
using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>
/// The upload's bytes, made as they are read: a safetensors file of float32 tensors, the chosen layers' attention only
/// (in layer order, so the gateway stages one layer after another). Each tensor is read from its memory-mapped shard a
/// slice at a time and widened from F16 or BF16 on the way; nothing else of the checkpoint is read, and at most one slice
/// is held. Reports <see cref="ImportProgress"/> as it goes.
/// </summary>
internal sealed class AttentionUploadStream : Stream
{
    private const int SliceElements = 1 << 18; // 1 MiB of float32 per slice

    private readonly IReadOnlyList<ShardSlice> _tensors;
    private readonly int[] _layerOf;             // per tensor, its index among the chosen layers
    private readonly long[] _layerEnds;          // per chosen layer, the stream offset where its last tensor ends
    private readonly IProgress<ImportProgress>? _progress;
    private readonly Dictionary<string, MemoryMappedFile> _maps = new(StringComparer.Ordinal);
    private readonly byte[] _prefix;             // 8-byte length and the header JSON
    private byte[] _slice = [];
    private int _sliceRead, _sliceLength;
    private int _tensor;                         // the tensor the next slice comes from
    private long _element;                       // its next element
    private long _position;

    public AttentionUploadStream(IReadOnlyList<ShardSlice> tensors, int[] layerOf, int layerCount, IProgress<ImportProgress>? progress)
    {
        _tensors = tensors;
        _layerOf = layerOf;
        _progress = progress;
        _prefix = Prefix(tensors);
        Length = _prefix.Length + tensors.Sum(t => t.Plan.ElementCount * sizeof(float));
        _layerEnds = new long[layerCount];
        long end = _prefix.Length;
        for (int i = 0; i < tensors.Count; i++)
        {
            end += tensors[i].Plan.ElementCount * sizeof(float);
            _layerEnds[layerOf[i]] = end;
        }
    }

    public override long Length { get; }
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int written = 0;
        while (written < buffer.Length && _position < Length)
        {
            if (_position < _prefix.Length)
            {
                int take = (int)Math.Min(_prefix.Length - _position, buffer.Length - written);
                _prefix.AsSpan((int)_position, take).CopyTo(buffer[written..]);
                written += take;
                _position += take;
                continue;
            }
            if (_sliceRead == _sliceLength) NextSlice();
            int copy = Math.Min(_sliceLength - _sliceRead, buffer.Length - written);
            _slice.AsSpan(_sliceRead, copy).CopyTo(buffer[written..]);
            _sliceRead += copy;
            written += copy;
            _position += copy;
        }
        if (written > 0) _progress?.Report(new ImportProgress(_position, Length, _layerEnds.Count(end => end <= _position), _layerEnds.Length));
        return written;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Read(buffer.Span));
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Reads the next slice of the current tensor from its shard's mapping and widens it to float32 bytes.</summary>
    private void NextSlice()
    {
        while (_element == _tensors[_tensor].Plan.ElementCount)
        {
            _tensor++;
            _element = 0;
        }
        var tensor = _tensors[_tensor];
        int elements = (int)Math.Min(SliceElements, tensor.Plan.ElementCount - _element);
        int size = tensor.DType.ByteSize();
        if (_slice.Length < elements * sizeof(float)) _slice = new byte[SliceElements * sizeof(float)];

        byte[] raw = ArrayPool<byte>.Shared.Rent(elements * size);
        try
        {
            using (var view = Map(tensor.ShardPath).CreateViewAccessor(tensor.FileOffset + _element * size, (long)elements * size, MemoryMappedFileAccess.Read))
                view.ReadArray(0, raw, 0, elements * size);
            var source = raw.AsSpan(0, elements * size);
            var floats = FloatBytes.AsFloats(_slice.AsSpan(0, elements * sizeof(float)));
            switch (tensor.DType)
            {
                case SafetensorsDType.F32:
                    source.CopyTo(_slice);
                    break;
                case SafetensorsDType.BF16:
                    Bf16.Decode(source, floats);
                    break;
                default: // F16, as Locate allows only these three
                    for (int i = 0; i < elements; i++) floats[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(source[(2 * i)..]);
                    break;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
        }
        _element += elements;
        _sliceRead = 0;
        _sliceLength = elements * sizeof(float);
    }

    private MemoryMappedFile Map(string path)
    {
        if (!_maps.TryGetValue(path, out var map))
            _maps[path] = map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        return map;
    }

    /// <summary>The safetensors length prefix and header: every tensor F32, back to back in order, padded to 8 bytes.</summary>
    private static byte[] Prefix(IReadOnlyList<ShardSlice> tensors)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            long offset = 0;
            foreach (var tensor in tensors)
            {
                long bytes = tensor.Plan.ElementCount * sizeof(float);
                json.WriteStartObject(tensor.Plan.Target);
                json.WriteString("dtype", "F32");
                json.WriteStartArray("shape");
                foreach (long dimension in tensor.Plan.Shape) json.WriteNumberValue(dimension);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        var prefix = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
        buffer.WrittenSpan.CopyTo(prefix.AsSpan(8));
        prefix.AsSpan(8 + buffer.WrittenCount).Fill((byte)' ');
        return prefix;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            foreach (var map in _maps.Values) map.Dispose();
        base.Dispose(disposing);
    }
}
