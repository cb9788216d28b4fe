using System.Globalization;
using Headwise.Grains.Forward;

namespace Headwise.Scaling;

/// <summary>The projection table of docs/scaling.md: the OLMo-7B-like layer over M machines, with tensors in Orleans messages, on the
/// tensor channel whole, and in pieces as built.</summary>
internal static class ScalingProjection
{
    /// <param name="channel">The tensor channel's fitted cost (the hop command measures it); X and the partial sums travel there.</param>
    /// <param name="pieceRows">Headwise__PieceRows: X and a leaf's partial sum travel in T / pieceRows pieces; 0: as the
    /// coordinator chooses per pass (<see cref="ScatterTree.PieceRowsFor"/>).</param>
    /// <param name="piecesOverhead">What 192-row pieces cost the kernels (bench `pieces`: pieces ms ÷ fused ms).</param>
    /// <param name="relayedPiecesOverhead">What 96-row pieces cost them.</param>
    public static void Print(ScalingModel model, ScalingModel channel, int pieceRows = 0, double piecesOverhead = 1.08,
        double relayedPiecesOverhead = 1.12, int fanout = 0)
    {
        var invariant = CultureInfo.InvariantCulture;
        const int tokens = 1024, modelDim = 4096;
        string rowsText = pieceRows > 0 ? $"{pieceRows} rows" : $"{ScatterTree.PieceRows} rows, {ScatterTree.RelayedPieceRows} through relays";
        Console.WriteLine(string.Create(invariant,
            $"## Projection: OLMo-7B-like layer (4096 wide, 32 heads, head_dim 128), T={tokens}, f32, 25 Gbit/s, machines of {model.GflopsPerMachine:F0} GFLOP/s, tree fanout {(fanout > 0 ? fanout.ToString(invariant) : "chosen per pass (4 up to 4 remote silos, then 2)")}\n"));
        Console.WriteLine(string.Create(invariant,
            $"Pieces of {rowsText}; kernels {piecesOverhead:F2}× slower in 192-row pieces, {relayedPiecesOverhead:F2}× in 96.\n"));
        Console.WriteLine("| machines | tensors in Orleans messages: ms (efficiency) | tensor channel, whole tensors (Headwise__PieceRows=0) | as built: X and partial sums in pieces |");
        Console.WriteLine("|---|---|---|---|");
        double single = model.ForwardMs(modelDim, 32, 128, tokens, 1, 25, 4);
        foreach (int machines in new[] { 1, 2, 4, 8, 16, 32 })
        {
            int remote = machines - 1;
            int depth = ScatterTree.Depth(remote, ScatterTree.FanoutFor(fanout, remote, (long)tokens * modelDim * sizeof(float)));
            int rows = ScatterTree.PieceRowsFor(pieceRows > 0 ? pieceRows : null, depth);
            double overhead = rows <= ScatterTree.RelayedPieceRows ? relayedPiecesOverhead : piecesOverhead;
            string Cell(double ms) => string.Create(invariant, $"{ms:F0} ({single / (machines * ms) * 100:F0}%)");
            Console.WriteLine($"| {machines} | {Cell(model.ForwardMs(modelDim, 32, 128, tokens, machines, 25, 4, fanout))} | " +
                $"{Cell(channel.ForwardMs(modelDim, 32, 128, tokens, machines, 25, 4, fanout))} | " +
                $"{Cell(channel.ForwardMs(modelDim, 32, 128, tokens, machines, 25, 4, fanout, pieces: (double)tokens / rows, piecesOverhead: overhead))} |");
        }
    }
}
