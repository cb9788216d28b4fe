using System.Buffers.Binary;

namespace Headwise.Contracts;

/// <summary>
/// Reads a safetensors file as its bytes arrive and hands out each layer's weights as soon as the last of its attention
/// tensors is in. Only those tensors are kept, each until its layer is handed out; everything else (MLP, embeddings) is
/// counted and skipped. So an upload holds about one layer's attention weights at a time, whatever the file's size, and
/// offsets are 64-bit: no 2 GiB ceiling. The header is parsed and every layer's tensors checked (present, float-typed,
/// of the right shape) before any layer is handed out, so a file with a bad header changes nothing.
/// </summary>
public sealed class StreamedSafetensors
{
    private readonly AttentionSpec _spec;
    private readonly WeightLayout _layout;
    private readonly string _prefix;
    private readonly long _maxBytes;
    private readonly byte[] _lengthPrefix = new byte[8];
    private byte[]? _header;
    private int _headerFilled;
    private long _received, _dataPosition;

    private sealed class Wanted(int layer, string suffix, SafetensorsRange range)
    {
        public int Layer { get; } = layer;
        public string Suffix { get; } = suffix;
        public SafetensorsRange Range { get; } = range;
        public byte[]? Bytes;
        public long Filled;
    }

    private List<Wanted> _wanted = [];
    private IReadOnlyList<SafetensorsRange> _ranges = [];
    private int _next;                       // the first wanted tensor (by offset) not begun yet
    private readonly List<Wanted> _active = [];
    private int[] _missing = [];             // per layer, tensors still to come
    private readonly Dictionary<int, List<Wanted>> _done = [];

    /// <param name="maxBytes">The most bytes the whole file may have (RESOURCE_EXHAUSTED past it).</param>
    public StreamedSafetensors(AttentionSpec spec, WeightLayout layout, string prefix, long maxBytes)
    {
        _spec = spec.Resolve();
        _layout = layout;
        _prefix = prefix;
        _maxBytes = maxBytes;
        AttentionLayouts.CheckSpec(_spec, layout);
        AttentionLayouts.CheckPrefix(prefix, _spec);
    }

    /// <summary>Bytes taken so far.</summary>
    public long Received => _received;

    /// <summary>Layers handed out so far.</summary>
    public int LayersDone { get; private set; }

    /// <summary>Takes the next bytes of the file; returns the layers they completed.</summary>
    public IReadOnlyList<LayerWeights> Accept(ReadOnlySpan<byte> chunk)
    {
        _received += chunk.Length;
        if (_received > _maxBytes)
            throw new HeadwiseException(ErrorCode.ResourceExhausted, $"chunk: the upload exceeds {_maxBytes} bytes (Headwise__MaxUploadBytes).");
        var completed = new List<LayerWeights>();
        while (chunk.Length > 0)
        {
            if (_header is null)
            {
                int take = Math.Min(8 - _headerFilled, chunk.Length);
                chunk[..take].CopyTo(_lengthPrefix.AsSpan(_headerFilled));
                _headerFilled += take;
                chunk = chunk[take..];
                if (_headerFilled == 8)
                {
                    int length = SafetensorsFile.CheckHeaderLength(BinaryPrimitives.ReadUInt64LittleEndian(_lengthPrefix), long.MaxValue,
                        Math.Min(SafetensorsFile.DefaultMaxHeaderBytes, _maxBytes));
                    _header = new byte[length];
                    _headerFilled = 0;
                }
            }
            else if (_headerFilled < _header.Length)
            {
                int take = Math.Min(_header.Length - _headerFilled, chunk.Length);
                chunk[..take].CopyTo(_header.AsSpan(_headerFilled));
                _headerFilled += take;
                chunk = chunk[take..];
                if (_headerFilled == _header.Length) ReadHeader(completed);
            }
            else
            {
                Data(chunk, completed);
                chunk = [];
            }
        }
        return completed;
    }

    /// <summary>The stream has ended: fails, naming what is missing, unless every layer was handed out.</summary>
    public void Finish()
    {
        if (_header is null || _headerFilled < _header.Length)
            throw HeadwiseException.Invalid(_received == 0
                ? "chunk: the stream ended after the header; send the safetensors file's bytes."
                : $"safetensors file ended after {_received} bytes, inside its header; send the whole file.");
        // Every tensor the header names must be there, used or not: a cut file is a broken file, as Parse says too.
        var first = _ranges.Where(r => r.End > _dataPosition).MinBy(r => r.Begin);
        if (first is not null)
            throw HeadwiseException.Invalid(
                $"safetensors file ended at data byte {_dataPosition}, before the end of tensor '{first.Name}' " +
                $"(data_offsets [{first.Begin}, {first.End}]); send the whole file.");
    }

    private void ReadHeader(List<LayerWeights> completed)
    {
        var header = SafetensorsFile.ParseHeader(_header!, long.MaxValue);
        _ranges = header.Tensors;
        var byName = header.Tensors.ToDictionary(t => t.Name, t => t, StringComparer.Ordinal);
        var found = WeightImporter.Check(header.Tensors.ToDictionary(t => t.Name, t => t.WithoutData(), StringComparer.Ordinal),
            _spec, _layout, _prefix);
        _wanted = found.SelectMany((tensors, layer) => tensors.Select(t => new Wanted(layer, t.Key, byName[t.Value.Name])))
            .OrderBy(w => w.Range.Begin).ToList();
        _missing = found.Select(tensors => tensors.Count).ToArray();
        _header = [];
        _headerFilled = 0;
        // A layer whose tensors are all empty is complete already (never in practice; kept exact).
        foreach (var empty in _wanted.Where(w => w.Range.Length == 0).ToList()) Complete(empty, completed);
        _next = 0;
        while (_next < _wanted.Count && _wanted[_next].Range.Length == 0) _next++;
    }

    private void Data(ReadOnlySpan<byte> chunk, List<LayerWeights> completed)
    {
        long start = _dataPosition, end = _dataPosition + chunk.Length;
        while (_next < _wanted.Count && _wanted[_next].Range.Begin < end)
        {
            var begun = _wanted[_next++];
            if (begun.Range.Length == 0) continue;
            if (begun.Range.Length > Array.MaxLength)
                throw HeadwiseException.Invalid($"tensor '{begun.Range.Name}' has {begun.Range.Length} bytes; one tensor may have at most {Array.MaxLength}.");
            begun.Bytes = GC.AllocateUninitializedArray<byte>((int)begun.Range.Length);
            _active.Add(begun);
        }
        for (int i = _active.Count - 1; i >= 0; i--)
        {
            var tensor = _active[i];
            long from = Math.Max(start, tensor.Range.Begin), to = Math.Min(end, tensor.Range.End);
            if (from >= to) continue;
            chunk.Slice((int)(from - start), (int)(to - from)).CopyTo(tensor.Bytes.AsSpan((int)(from - tensor.Range.Begin)));
            tensor.Filled += to - from;
            if (tensor.Filled == tensor.Range.Length)
            {
                _active.RemoveAt(i);
                Complete(tensor, completed);
            }
        }
        _dataPosition = end;
    }

    private void Complete(Wanted tensor, List<LayerWeights> completed)
    {
        if (!_done.TryGetValue(tensor.Layer, out var layer)) _done[tensor.Layer] = layer = [];
        layer.Add(tensor);
        if (--_missing[tensor.Layer] > 0) return;
        var tensors = layer.ToDictionary(t => t.Suffix, t => t.Range.WithData(t.Bytes ?? []), StringComparer.Ordinal);
        completed.Add(WeightImporter.ImportLayer(tensors, _spec, _layout, tensor.Layer));
        _done.Remove(tensor.Layer);
        foreach (var t in layer) t.Bytes = null;
        LayersDone++;
    }
}
