using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>
/// A forward's X arrives inline as one array per call, as big as the request (the gRPC parse makes it). On the default
/// runtime settings every such array above 85,000 bytes went to the large-object heap, whose budget only a gen-2
/// collection renews: a silo serving 3 MB inputs ran a background gen-2 collection every twenty or so passes, and those
/// held up the next request's arrival (docs/scaling.md, "Large inputs and gen-2 collections"). The silo's runtimeconfig
/// now keeps arrays below 32 MB in the young generations.
/// </summary>
public sealed class ForwardInputGcTests
{
    [Fact]
    public async Task A_hundred_three_megabyte_inputs_run_without_a_gen_2_collection()
    {
        await using var silo = SiloProcess.Start(BuiltPrograms.SiloDll);
        await silo.WaitUntilHealthyAsync();
        await using var client = new GrpcAttentionClient(silo.GrpcAddress, new GrpcAttentionClientOptions { SharedMemory = SharedMemoryMode.Off });
        using var http = new HttpClient { BaseAddress = silo.WebAddress };
        // [8, 128, 768] float32: 3 MB of X per call (GPT-2 small at T = 1024 is the same size), each pass a few
        // milliseconds of compute.
        const int batch = 8, tokens = 128, modelDim = 768, passes = 100;
        var random = new Random(20261202);
        var input = new AttentionInput
        {
            Input = new FloatTensor(Enumerable.Range(0, batch * tokens * modelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(),
                batch, tokens, modelDim),
        };
        for (int i = 0; i < 10; i++) await client.ForwardAsync("demo", input);

        var before = await SiloGcCounters.ReadAsync(http);
        for (int i = 0; i < passes; i++) await client.ForwardAsync("demo", input);
        var after = await SiloGcCounters.ReadAsync(http);

        long xBytes = (long)batch * tokens * modelDim * sizeof(float);
        // The inputs were really parsed into fresh arrays, call by call: the silo allocated at least X per pass.
        Assert.True(after.Allocated - before.Allocated >= passes * xBytes,
            $"the silo allocated {after.Allocated - before.Allocated:N0} bytes over {passes} passes of {xBytes:N0}-byte inputs");
        // With the runtime's default 85,000-byte threshold (DOTNET_GCLOHThreshold=14C08 in the silo's environment) this read
        // 5 in two runs out of two.
        Assert.True(after.Gen2 - before.Gen2 <= 1,
            $"{after.Gen2 - before.Gen2} gen-2 collections over {passes} passes of {xBytes:N0}-byte inputs");
    }
}
