using System.Diagnostics;
using System.Globalization;
using Grpc.Net.Client;
using Grpc.Net.Client.Configuration;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.Scaling;

/// <summary>
/// What a forward pass costs the client on the silo's machine, where it takes the cores the pass needs: its CPU time,
/// managed allocations and gen-2 collections per pass, beside the silo's CPU per pass and the round trip. Rows: the
/// SDK inline, with Y in a new array and in the caller's buffer; a plain client generated from the proto, without and with gRPC's retry policy for Forward (which keeps a
/// copy of every request for the call's life; the SDK retried Forward that way before it retried it itself); the SDK
/// through shared memory. One silo on both cores; every row repeated per round, so the VM's drift shows.
/// </summary>
internal static class ClientCost
{
    public static async Task RunAsync(string siloDll, int[] tokenCounts, int passes, int rounds)
    {
        await using var cluster = await ClusterUnderTest.StartAsync(siloDll, 1);
        var silo = cluster.Silos[0];
        using var siloProcess = Process.GetProcessById(silo.ProcessId);
        var invariant = CultureInfo.InvariantCulture;
        Console.WriteLine($"## A forward pass's cost to a client on the silo's machine (GPT-2-small shape, one silo, {passes} passes a row)\n");
        Console.WriteLine("| round | T | client | ms, median (best) | client CPU per pass | client allocated per pass | client gen-2 per 100 passes | silo CPU per pass |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (int tokens in tokenCounts)
        {
            var random = new Random(tokens);
            var x = Enumerable.Range(0, tokens * 768).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var input = new AttentionInput { Input = new FloatTensor(x, 1, tokens, 768) };
            for (int round = 1; round <= rounds; round++)
            {
                foreach (var (name, pass, dispose) in Clients(silo.GrpcAddress, input))
                {
                    await Warmup.RunAsync(pass, Warmup.Default, [silo.WebAddress]);
                    var row = await MeasureAsync(pass, passes, siloProcess);
                    Console.WriteLine(string.Create(invariant,
                        $"| {round} | {tokens} | {name} | {row.Median:F1} ({row.Best:F1}) | {row.ClientCpu:F1} ms | {row.ClientAllocated / 1e6:F2} MB | {row.ClientGen2 * 100.0 / passes:F0} | {row.SiloCpu:F1} ms |"));
                    await dispose();
                }
            }
        }
    }

    private static IEnumerable<(string Name, Func<Task> Pass, Func<ValueTask> Dispose)> Clients(Uri address, AttentionInput input)
    {
        var sdk = new GrpcAttentionClient(address);
        yield return ("SDK, inline", () => sdk.ForwardAsync("demo", input), sdk.DisposeAsync);
        var intoBuffer = new GrpcAttentionClient(address);
        var y = new float[input.Input.Data.Length];
        yield return ("SDK, inline, Y into the caller's buffer", () => intoBuffer.ForwardAsync("demo", input, y), intoBuffer.DisposeAsync);
        foreach (bool retried in new[] { false, true })
        {
            var channel = GrpcChannel.ForAddress(address, PlainOptions(retried));
            var plain = new V1.Attention.AttentionClient(channel);
            var tensor = new V1.Tensor
            {
                Dtype = V1.DType.F32,
                Data = Google.Protobuf.ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(input.Input.Data.Span)),
            };
            tensor.Shape.Add(input.Input.Shape.Select(s => (long)s));
            var request = new V1.ForwardRequest { Model = "demo", Input = tensor };
            yield return (retried ? "plain, gRPC retry policy" : "plain, no retry policy", async () => await plain.ForwardAsync(request),
                () => { channel.Dispose(); return ValueTask.CompletedTask; });
        }
        var shared = new GrpcAttentionClient(address, new GrpcAttentionClientOptions { SharedMemory = SharedMemoryMode.On });
        yield return ("SDK, shared memory", () => shared.ForwardAsync("demo", input), shared.DisposeAsync);
    }

    private static GrpcChannelOptions PlainOptions(bool retried)
    {
        var options = new GrpcChannelOptions { MaxReceiveMessageSize = null, MaxRetryBufferPerCallSize = 128L << 20, MaxRetryBufferSize = 512L << 20 };
        if (retried)
        {
            var config = new MethodConfig
            {
                Names = { new MethodName { Service = "headwise.v1.Attention", Method = "Forward" } },
                RetryPolicy = new RetryPolicy
                {
                    MaxAttempts = 5, InitialBackoff = TimeSpan.FromMilliseconds(200), MaxBackoff = TimeSpan.FromSeconds(2), BackoffMultiplier = 2,
                    RetryableStatusCodes = { Grpc.Core.StatusCode.Unavailable },
                },
            };
            options.ServiceConfig = new ServiceConfig { MethodConfigs = { config } };
        }
        return options;
    }

    private static async Task<(double Median, double Best, double ClientCpu, long ClientAllocated, int ClientGen2, double SiloCpu)> MeasureAsync(
        Func<Task> pass, int passes, Process silo)
    {
        var client = Process.GetCurrentProcess();
        silo.Refresh();
        var (clientCpu, siloCpu) = (client.TotalProcessorTime, silo.TotalProcessorTime);
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        int gen2 = GC.CollectionCount(2);
        var times = new double[passes];
        for (int i = 0; i < passes; i++)
        {
            long started = Stopwatch.GetTimestamp();
            await pass();
            times[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }
        client.Refresh();
        silo.Refresh();
        Array.Sort(times);
        return (times[passes / 2], times[0], (client.TotalProcessorTime - clientCpu).TotalMilliseconds / passes,
            (GC.GetTotalAllocatedBytes(precise: true) - allocated) / passes, GC.CollectionCount(2) - gen2,
            (silo.TotalProcessorTime - siloCpu).TotalMilliseconds / passes);
    }
}
