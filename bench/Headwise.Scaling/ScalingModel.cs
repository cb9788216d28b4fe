namespace Headwise.Scaling;

/// <summary>
/// A first-order model of one forward pass over M machines, built on constants measured here:
/// the coordinator serialises X once per remote machine (a + b·bytes each, one after another, then the NIC),
/// every machine computes its share of heads, Z comes back over the coordinator's NIC, W_O runs at the coordinator.
/// </summary>
internal sealed record ScalingModel(double MessageMs, double MsPerByte, double GflopsPerMachine)
{
    public static (double PerMessageMs, double PerByteMs) Fit(IReadOnlyList<(double Bytes, double Ms)> points)
    {
        double meanX = points.Average(p => p.Bytes), meanY = points.Average(p => p.Ms);
        double covariance = points.Sum(p => (p.Bytes - meanX) * (p.Ms - meanY));
        double variance = points.Sum(p => (p.Bytes - meanX) * (p.Bytes - meanX));
        double slope = variance == 0 ? 0 : covariance / variance;
        return (meanY - slope * meanX, slope);
    }

    /// <summary>Milliseconds of one layer's forward pass (not causal) over <paramref name="machines"/> machines.</summary>
    public double ForwardMs(int modelDim, int heads, int headDim, int tokens, int machines, double gigabitsPerSecond, int bytesPerValue)
    {
        double headFlops = 2.0 * tokens * modelDim * 3 * headDim + 4.0 * tokens * tokens * headDim;
        double outputFlops = 2.0 * tokens * heads * headDim * modelDim;
        double inputBytes = (double)tokens * modelDim * bytesPerValue;
        double headOutputBytes = (double)tokens * headDim * bytesPerValue;
        double bytesPerMs = gigabitsPerSecond * 1e9 / 8 / 1000;
        int localHeads = (heads + machines - 1) / machines;
        int remoteHeads = heads - localHeads;
        double compute = localHeads * headFlops / (GflopsPerMachine * 1e6);
        double send = (machines - 1) * (MessageMs + inputBytes * MsPerByte + inputBytes / bytesPerMs);
        double receive = remoteHeads * headOutputBytes / bytesPerMs;
        return send + compute + receive + outputFlops / (GflopsPerMachine * 1e6);
    }
}
