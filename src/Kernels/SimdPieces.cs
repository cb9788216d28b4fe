using System.Buffers;
using System.Runtime.InteropServices;

namespace Headwise.Kernels;

/// <summary>
/// <see cref="SimdKernel"/>'s pieces: the fused kernel's own steps, cut along rows. Each piece of X goes through the same
/// packed GEMM, RoPE at its positions, the scale of Q and the packing of K and V into the sequence's panels; a block of
/// query rows runs <see cref="AttentionTiles"/> over those panels. Blocks that start on a multiple of the query tile
/// (24 rows covers every width) give Z bit for bit as <see cref="SimdKernel.Attend"/>. The scratch (Q, K, V and the
/// panels of every sequence of the pass) is pooled and lives until <see cref="HeadGroupPieces.Dispose()"/>.
/// </summary>
internal sealed unsafe class SimdPieces<TOps, TVector> : HeadGroupPieces
    where TOps : struct, IFloatVectorOps<TVector>
    where TVector : struct
{
    private readonly PackedHeadGroup _group;
    private readonly int _projectionWidth, _panelWidth, _keysPadded, _scoreStride, _accumulatorLength;
    private readonly long _qkvLength, _keyLength, _valuePanelStride, _perSequence;
    private float[]? _scratch;
    // The scratch stays pinned for the pass, so Q, K, V and the panels can start on a cache line as the fused kernel's do:
    // a pooled array starts wherever the heap put it, and an AVX-512 load from an unaligned panel touches two lines.
    private GCHandle _pin;
    private readonly float* _base;

    public SimdPieces(PackedHeadGroup group, HeadGroupWeights weights, int batch, int tokens, ReadOnlySpan<int> lengths, AttentionOptions options)
        : base(weights, batch, tokens, lengths, options)
    {
        _group = group;
        var shape = group.Shape;
        _projectionWidth = group.ProjectionWidth;
        _panelWidth = 2 * TOps.Count;
        int rowsPadded = SimdKernel.RoundUp(Math.Max(tokens, 1), AttentionTiles.QueryRows<TOps, TVector>());
        _keysPadded = SimdKernel.RoundUp(Math.Max(tokens, 1), _panelWidth);
        int headPanels = (shape.HeadDim + _panelWidth - 1) / _panelWidth;
        _qkvLength = SimdKernel.Align((long)rowsPadded * _projectionWidth);
        _keyLength = SimdKernel.Align((long)_keysPadded * shape.HeadDim);
        _valuePanelStride = (long)_keysPadded * _panelWidth;
        _perSequence = _qkvLength + _keyLength + SimdKernel.Align(headPanels * _valuePanelStride);
        _scoreStride = AttentionTiles.ScoreStride(_keysPadded, wantAttention: false);
        _accumulatorLength = AttentionTiles.MaxQueryRows * headPanels * _panelWidth;
        _scratch = ArrayPool<float>.Shared.Rent(checked((int)(_perSequence * Math.Max(batch, 1) + CacheLine.SlackFloats)));
        _pin = GCHandle.Alloc(_scratch, GCHandleType.Pinned);
        _base = CacheLine.Align((float*)_pin.AddrOfPinnedObject());
        long baseOffset = _base - (float*)_pin.AddrOfPinnedObject();
        // Rows past a sequence feed its last query tile and keys past it fill its last panels: zeros keep them finite. The
        // projected rows themselves are all written before they are read, so only the padding and the panels are cleared
        // (clearing them too was a measurable part of the cost of pieces over the fused kernel).
        for (int sequence = 0; sequence < Math.Max(batch, 1); sequence++)
        {
            long at = baseOffset + sequence * _perSequence;
            _scratch.AsSpan((int)(at + (long)tokens * _projectionWidth), (int)(_qkvLength - (long)tokens * _projectionWidth)).Clear();
            _scratch.AsSpan((int)(at + _qkvLength), (int)(_perSequence - _qkvLength)).Clear();
        }
    }

    private float* Scratch => _scratch is null ? throw new ObjectDisposedException(nameof(HeadGroupPieces)) : _base;

    protected override void ProjectRows(ReadOnlySpan<float> rows, int firstRow, int count)
    {
        var shape = _group.Shape;
        int modelDim = shape.ModelDim, queryWidth = shape.QueryWidth, headDim = shape.HeadDim;
        var weightPanels = _group.Panels;
        float* scratch = Scratch;
        fixed (float* x = rows, bias = _group.Bias)
        {
            for (int done = 0; done < count;)
            {
                int row = firstRow + done, sequence = row / Tokens, position = row % Tokens;
                int n = Math.Min(Tokens - position, count - done);
                float* qkv = scratch + sequence * _perSequence;
                float* keyPanels = qkv + _qkvLength;
                float* valuePanels = keyPanels + _keyLength;
                float* into = qkv + (nint)position * _projectionWidth;
                Gemm.Multiply<TOps, TVector>(x + (nint)done * modelDim, modelDim, n, modelDim, weightPanels, into, _projectionWidth, accumulate: false, bias);
                if (Options.Rotary.IsEnabled)
                    Options.Rotary.Apply(new Span<float>(into, n * _projectionWidth), _projectionWidth, n, shape.QueryHeads + 1, headDim, position);
                for (int i = 0; i < n; i++)
                    SimdKernel.ScaleRow<TOps, TVector>(into + (nint)i * _projectionWidth, queryWidth, Options.Scale);
                SimdKernel.PackKeys(qkv + queryWidth, _projectionWidth, position, position + n, headDim, _panelWidth, keyPanels);
                SimdKernel.PackValues(qkv + queryWidth + headDim, _projectionWidth, position, position + n, headDim, _panelWidth, _keysPadded, valuePanels);
                done += n;
            }
        }
        GC.KeepAlive(_group);
    }

    protected override void AttendRows(int firstRow, int endRow, Span<float> output)
    {
        var shape = _group.Shape;
        int queryWidth = shape.QueryWidth, headDim = shape.HeadDim;
        int scoreLength = (int)SimdKernel.Align((long)AttentionTiles.MaxQueryRows * _scoreStride);
        float[] local = ArrayPool<float>.Shared.Rent(scoreLength + _accumulatorLength + CacheLine.SlackFloats);
        try
        {
            float* scratch = Scratch;
            fixed (float* z = output, perCallStart = local)
            {
                float* scores = CacheLine.Align(perCallStart), accumulator = scores + scoreLength;
                for (int row = firstRow; row < endRow;)
                {
                    int sequence = row / Tokens, first = row % Tokens;
                    int end = Math.Min(Tokens, first + endRow - row);
                    float* qkv = scratch + sequence * _perSequence;
                    float* keyPanels = qkv + _qkvLength;
                    float* valuePanels = keyPanels + _keyLength;
                    // Z of this sequence's rows starts at output row (row − firstRow); Head writes its rows at their position.
                    float* sequenceOutput = z + (nint)(row - firstRow - first) * queryWidth;
                    for (int head = 0; head < shape.QueryHeads; head++)
                        AttentionTiles.Head<TOps, TVector>(qkv + head * headDim, _projectionWidth, keyPanels, valuePanels, (nint)_valuePanelStride,
                            Tokens, headDim, LengthOf(sequence), Options, scores, _scoreStride, accumulator, sequenceOutput + head * headDim,
                            queryWidth, null, first, end);
                    row += end - first;
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(local);
        }
    }

    // Pieces never disposed must not pin their scratch for the life of the process.
    ~SimdPieces() => Dispose(false);

    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _scratch, null) is { } scratch)
        {
            _pin.Free();
            if (disposing) ArrayPool<float>.Shared.Return(scratch);
        }
    }
}
