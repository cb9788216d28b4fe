namespace Headwise.Kernels;

/// <summary>
/// cos and sin of every position's angles for one (θ, dim, scaling), computed once in float64 and kept: a 1024-token RoPE
/// forward would otherwise spend as long on 32 K cos/sin pairs per head group as on a fifth of its attention.
/// Grown by doubling; readers keep whichever table they got, so growth never disturbs a reader.
/// </summary>
internal sealed class RotaryTable
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Rotary, RotaryTable> Tables = new();

    private readonly float[] _cos; // [positions, dim/2]
    private readonly float[] _sin;
    private readonly int _half;

    public int Positions { get; }

    private RotaryTable(Rotary rotary, int positions)
    {
        _half = rotary.Dim / 2;
        Positions = positions;
        _cos = new float[positions * _half];
        _sin = new float[positions * _half];
        double[] inverseFrequency = rotary.InverseFrequencies();
        for (int position = 0; position < positions; position++)
            for (int i = 0; i < _half; i++)
            {
                double angle = position * inverseFrequency[i];
                _cos[position * _half + i] = (float)Math.Cos(angle);
                _sin[position * _half + i] = (float)Math.Sin(angle);
            }
    }

    public ReadOnlySpan<float> Cos(int position) => _cos.AsSpan(position * _half, _half);
    public ReadOnlySpan<float> Sin(int position) => _sin.AsSpan(position * _half, _half);

    /// <summary>A table holding at least positions 0 … <paramref name="positions"/> − 1.</summary>
    public static RotaryTable For(Rotary key, int positions)
    {
        if (Tables.TryGetValue(key, out var table) && table.Positions >= positions) return table;
        // Two threads may both grow it; either table is right, and the larger one stays.
        var grown = new RotaryTable(key, Math.Max(positions, Math.Max(1024, 2 * (table?.Positions ?? 0))));
        Tables.AddOrUpdate(key, grown, (_, current) => current.Positions >= grown.Positions ? current : grown);
        return grown;
    }
}
