using System.Diagnostics;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Scaling;

/// <summary>What one configuration measured: medians over the repetitions, bytes from the cluster's own reports.</summary>
internal sealed record ForwardSample(int Silos, string Mode, int Tokens, double MedianMs, long BytesSent, long BytesReceived,
    double RemoteOverheadMs, double LocalOverheadMs, long BytesPerRemoteCall, double ScatterMs);

internal static class ForwardSampler
{
    public static async Task<ForwardSample> MeasureAsync(IAttentionClient client, int silos, string mode, int tokens, int repetitions, bool bf16)
    {
        var random = new Random(tokens);
        var input = new float[tokens * 768];
        for (int i = 0; i < input.Length; i++) input[i] = (float)(random.NextDouble() * 2 - 1);
        var request = new AttentionInput { Input = new FloatTensor(input, 1, tokens, 768), Bf16Wire = bf16 };

        await Warmup.RunAsync(() => client.ForwardAsync("demo", request), Warmup.Default);
        var times = new List<double>();
        var outputs = new List<AttentionOutput>();
        for (int i = 0; i < repetitions; i++)
        {
            long started = Stopwatch.GetTimestamp();
            outputs.Add(await client.ForwardAsync("demo", request));
            times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        var last = outputs[^1];
        string coordinator = last.Silos.Single(s => s.BytesSent == 0 && s.BytesReceived == 0).Silo;
        var heads = outputs.SelectMany(o => o.Heads).ToList();
        var remote = heads.Where(h => h.Silo != coordinator).ToList();
        var local = heads.Where(h => h.Silo == coordinator).ToList();
        return new ForwardSample(silos, mode, tokens, Median(times),
            last.Silos.Sum(s => s.BytesSent), last.Silos.Sum(s => s.BytesReceived),
            remote.Count == 0 ? 0 : Median(remote.Select(h => h.CallMs - h.ComputeMs)),
            Median(local.Select(h => h.CallMs - h.ComputeMs)),
            remote.Count == 0 ? 0 : remote[0].InputBytes + remote[0].OutputBytes,
            Median(outputs.Select(o => o.Heads.Max(h => h.CallMs))));
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted[sorted.Length / 2];
    }
}
