namespace Headwise.Kernels;

/// <summary>
/// One head group's attention over a pass, computed in pieces so a silo can start before all of X has arrived and send
/// its partial sum while it computes the rest (the pipelining of issue #11): <see cref="Project"/> takes the rows of X as
/// they arrive; <see cref="Attend"/> computes a block of query rows once every key those rows see is projected
/// (<see cref="KeysNeededBy"/>). Rows are those of the flattened [batch·tokens, D] input. A piece or block may span
/// sequences. The Z this gives equals <see cref="IHeadKernel.Attend"/>'s, bit for bit where the kernel says so.
/// Project calls must not overlap each other; Attend calls may run at once on other threads once their keys are in.
/// </summary>
public abstract class HeadGroupPieces : IDisposable
{
    private readonly int[] _lengths;

    protected HeadGroupPieces(HeadGroupWeights weights, int batch, int tokens, ReadOnlySpan<int> lengths, AttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (!lengths.IsEmpty && lengths.Length != batch)
            throw new ArgumentException($"lengths has {lengths.Length} values; [batch] or empty needs {batch}.", nameof(lengths));
        Weights = weights;
        Batch = batch;
        Tokens = tokens;
        Options = options;
        _lengths = lengths.ToArray();
    }

    public HeadGroupWeights Weights { get; }
    public int Batch { get; }
    public int Tokens { get; }
    public AttentionOptions Options { get; }

    /// <summary>batch·tokens.</summary>
    public int Rows => Batch * Tokens;

    /// <summary>Valid tokens of a sequence (keys at or past it are masked).</summary>
    public int LengthOf(int sequence) => _lengths.Length == 0 ? Tokens : Math.Clamp(_lengths[sequence], 0, Tokens);

    /// <summary>
    /// How many rows of X (from row 0) must be projected before query rows [.., <paramref name="endRow"/>) can be
    /// attended: with a causal mask the rows up to the block's end, else the whole of the last sequence it touches.
    /// </summary>
    public int KeysNeededBy(int endRow)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(endRow, Rows);
        if (endRow <= 0) return 0;
        return NeedsEveryRow ? Rows : Options.Causal ? endRow : ((endRow - 1) / Tokens + 1) * Tokens;
    }

    /// <summary>Projects Q, K and V of x rows [firstRow, firstRow + rows.Length / D).</summary>
    public void Project(ReadOnlySpan<float> rows, int firstRow)
    {
        int modelDim = Weights.Shape.ModelDim;
        if (modelDim == 0 || rows.Length % modelDim != 0)
            throw new ArgumentException($"rows has {rows.Length} values; whole rows of D = {modelDim} are needed.", nameof(rows));
        int count = rows.Length / modelDim;
        if (firstRow < 0 || firstRow + count > Rows)
            throw new ArgumentOutOfRangeException(nameof(firstRow), $"rows [{firstRow}, {firstRow + count}) lie outside the pass's {Rows}.");
        if (count > 0) ProjectRows(rows, firstRow, count);
    }

    /// <summary>Z of query rows [firstRow, endRow) into <paramref name="output"/>: [endRow − firstRow, g·dh].</summary>
    public void Attend(int firstRow, int endRow, Span<float> output)
    {
        if (firstRow < 0 || endRow < firstRow || endRow > Rows)
            throw new ArgumentOutOfRangeException(nameof(endRow), $"query rows [{firstRow}, {endRow}) lie outside the pass's {Rows}.");
        long needed = (long)(endRow - firstRow) * Weights.Shape.QueryWidth;
        if (output.Length != needed)
            throw new ArgumentException($"output has {output.Length} values; [rows, g·dh] needs {needed}.", nameof(output));
        if (endRow > firstRow) AttendRows(firstRow, endRow, output);
    }

    /// <summary>Whether every block waits for all of X (a kernel that attends the whole pass at once).</summary>
    protected virtual bool NeedsEveryRow => false;

    protected abstract void ProjectRows(ReadOnlySpan<float> rows, int firstRow, int count);

    protected abstract void AttendRows(int firstRow, int endRow, Span<float> output);

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) { }
}

/// <summary>
/// Pieces for a kernel without its own (the reference, the GPU): rows are gathered until every key is in, then the whole
/// group runs through <see cref="IHeadKernel.Attend"/> once. Right, but nothing overlaps.
/// </summary>
internal sealed class WholeGroupPieces(IHeadKernel kernel, HeadGroupWeights weights, int batch, int tokens, ReadOnlySpan<int> lengths,
    AttentionOptions options) : HeadGroupPieces(weights, batch, tokens, lengths, options)
{
    private readonly float[] _input = new float[batch * tokens * weights.Shape.ModelDim];
    private float[]? _output;
    private readonly Lock _attending = new();

    protected override bool NeedsEveryRow => true;

    protected override void ProjectRows(ReadOnlySpan<float> rows, int firstRow, int count) =>
        rows.CopyTo(_input.AsSpan(firstRow * Weights.Shape.ModelDim));

    protected override void AttendRows(int firstRow, int endRow, Span<float> output)
    {
        int width = Weights.Shape.QueryWidth;
        lock (_attending)
        {
            if (_output is null)
            {
                var lengths = new int[Batch];
                for (int s = 0; s < Batch; s++) lengths[s] = LengthOf(s);
                var all = new float[Rows * width];
                kernel.Attend(_input, Batch, Tokens, lengths, Weights, Options, all, Span<float>.Empty);
                _output = all;
            }
        }
        _output.AsSpan(firstRow * width, (endRow - firstRow) * width).CopyTo(output);
    }
}
