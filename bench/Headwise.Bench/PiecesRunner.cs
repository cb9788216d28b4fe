using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>
/// What computing a silo's share of a layer in pieces costs the kernels, on the calling thread: six GPT-2-small groups
/// and their rows of W_O, fused (each group's Attend, then one W_O GEMM) against pieces (every group's projection piece by
/// piece, then attention and W_O by blocks of query rows), timed in alternation. The pieces' gain, overlapping the
/// transfers of X and the partial sum, is not in this figure: it is what they must pay for.
/// </summary>
internal static class PiecesRunner
{
    public static int Run(string[] args)
    {
        // As on a silo's compute thread: no kernel call splits itself over helper threads.
        KernelThreads.OwnThreadOnly = true;
        int tokens = args.Length > 0 ? int.Parse(args[0]) : 1024;
        int groups = args.Length > 1 ? int.Parse(args[1]) : 6;
        const int modelDim = 768, headDim = 64;
        var random = new Random(1);
        float[] Random(int count)
        {
            var values = new float[count];
            for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 0.2 - 0.1);
            return values;
        }
        var shape = new HeadGroupShape(modelDim, headDim, 1);
        var weights = Enumerable.Range(0, groups).Select(_ => new HeadGroupWeights(shape, Random(modelDim * headDim), Random(modelDim * headDim), Random(modelDim * headDim))).ToArray();
        var outputRows = Random(groups * headDim * modelDim);
        var x = Random(tokens * modelDim);
        var kernel = new SimdKernel();
        foreach (var w in weights) kernel.Prepare(w);
        var options = new AttentionOptions(1 / MathF.Sqrt(headDim), Causal: false, Window: 0);
        int width = groups * headDim;
        var z = new float[tokens * width];
        var groupZ = new float[tokens * headDim];
        var y = new float[tokens * modelDim];

        void Fused()
        {
            for (int g = 0; g < groups; g++)
            {
                kernel.Attend(x, 1, tokens, [], weights[g], options, groupZ, []);
                for (int t = 0; t < tokens; t++) groupZ.AsSpan(t * headDim, headDim).CopyTo(z.AsSpan(t * width + g * headDim));
            }
            kernel.Project(z, tokens, width, outputRows, modelDim, [], y);
        }

        // Where the pieces' time goes: Q, K, V projected (with the scratch's setup), attention, W_O.
        var projectionMs = new List<double>();
        var attentionMs = new List<double>();
        var outputMs = new List<double>();
        void Pieces(int pieceRows, int blockRows)
        {
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            var pieces = weights.Select(w => kernel.BeginPieces(w, 1, tokens, [], options)).ToArray();
            for (int start = 0; start < tokens; start += pieceRows)
            {
                int end = Math.Min(tokens, start + pieceRows);
                foreach (var piece in pieces) piece.Project(x.AsSpan(start * modelDim, (end - start) * modelDim), start);
            }
            projectionMs.Add(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            double attending = 0, projecting = 0;
            for (int start = 0; start < tokens; start += blockRows)
            {
                started = System.Diagnostics.Stopwatch.GetTimestamp();
                int end = Math.Min(tokens, start + blockRows), rows = end - start;
                for (int g = 0; g < groups; g++)
                {
                    pieces[g].Attend(start, end, groupZ.AsSpan(0, rows * headDim));
                    for (int t = 0; t < rows; t++) groupZ.AsSpan(t * headDim, headDim).CopyTo(z.AsSpan(t * width + g * headDim));
                }
                attending += System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                started = System.Diagnostics.Stopwatch.GetTimestamp();
                kernel.Project(z.AsSpan(0, rows * width), rows, width, outputRows, modelDim, [], y.AsSpan(start * modelDim, rows * modelDim));
                projecting += System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }
            foreach (var piece in pieces) piece.Dispose();
            attentionMs.Add(attending);
            outputMs.Add(projecting);
        }
        static double Median(List<double> times)
        {
            times.Sort();
            return times[times.Count / 2];
        }

        Console.WriteLine($"T={tokens}, {groups} GPT-2-small groups and their W_O rows, on one thread ({Environment.ProcessorCount} CPUs); load {TableRunner.LoadAverage()}");
        Console.WriteLine("| pieces of X, blocks of rows | fused ms | pieces ms | pieces ÷ fused | pieces: Q, K, V ms | pieces: attention ms | pieces: W_O ms |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var (pieceRows, blockRows) in new[] { (tokens, tokens), (192, tokens), (192, 192), (96, 96) })
        {
            projectionMs.Clear();
            attentionMs.Clear();
            outputMs.Clear();
            var (fused, timed) = Timing.MeasurePair(Fused, () => Pieces(pieceRows, blockRows), minSeconds: 2.0);
            var pieces = timed!.Value;
            Console.WriteLine($"| {pieceRows}, {blockRows} | {fused.MedianMs:F1} ({fused.MinMs:F1}) | {pieces.MedianMs:F1} ({pieces.MinMs:F1}) | " +
                              $"{pieces.MedianMs / fused.MedianMs:F2} | {Median(projectionMs):F1} | {Median(attentionMs):F1} | {Median(outputMs):F1} |");
        }
        return 0;
    }
}
