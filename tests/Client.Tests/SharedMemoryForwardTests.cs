using Google.Protobuf;
using Grpc.Net.Client;
using Headwise.Contracts;
using Headwise.TestSupport;
using Proto = Headwise.V1;

namespace Headwise.Client.Tests;

/// <summary>
/// The SDK's shared-memory forward (<see cref="SharedMemoryMode"/>) against the same forward with inline bytes on the
/// same silo: the answer is the same bit for bit, concurrent passes on one client get their own answers, and disposing
/// the client unregisters its regions and deletes their files.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class SharedMemoryForwardTests(SiloFixture silo) : IAsyncLifetime
{
    private const string Model = "shm-forward";
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-small-shape");
    private IAttentionClient _inline = null!;

    public async Task InitializeAsync()
    {
        _inline = silo.CreateGrpcClient();
        if ((await _inline.ListModelsAsync()).Any(m => m.Name == Model)) return;
        await _inline.CreateModelAsync(Model, Golden.Spec);
        await _inline.UploadWeightsAsync(Model, new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
    }

    public async Task DisposeAsync() => await _inline.DisposeAsync();

    private static GrpcAttentionClient SharedClient(SiloFixture silo, SharedMemoryMode mode = SharedMemoryMode.On) =>
        new(silo.GrpcAddress, new GrpcAttentionClientOptions { SharedMemory = mode });

    private static AttentionInput RandomInput(int seed, int batch, int tokens, bool causal, int[]? lengths)
    {
        var random = new Random(seed);
        var x = new float[batch * tokens * Golden.Spec.ModelDim];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 4 - 2);
        return new AttentionInput
        {
            Input = new FloatTensor(x, batch, tokens, Golden.Spec.ModelDim), Causal = causal, Lengths = lengths,
            ReturnAttention = true, ReturnHeadOutputs = true,
        };
    }

    /// <summary>This process's files in /dev/shm that the SDK made.</summary>
    private static HashSet<string> OurFiles() =>
        Directory.GetFiles("/dev/shm", $"headwise-{Environment.ProcessId}-*").Select(Path.GetFileName).ToHashSet()!;

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task A_forward_through_shared_memory_equals_the_inline_forward_bit_for_bit(bool causal, bool padded)
    {
        await using var shared = SharedClient(silo);
        var input = RandomInput(causal ? 11 : 12, batch: 2, tokens: 37, causal, padded ? [37, 20] : null);

        var inline = await _inline.ForwardAsync(Model, input);
        var viaShm = await shared.ForwardAsync(Model, input);

        Assert.Equal(inline.Output.Shape, viaShm.Output.Shape);
        Assert.True(inline.Output.Data.Span.SequenceEqual(viaShm.Output.Data.Span), "Y differs between inline and shared memory");
        Assert.True(inline.Attention!.Data.Span.SequenceEqual(viaShm.Attention!.Data.Span), "attention differs");
        Assert.True(inline.HeadOutputs!.Data.Span.SequenceEqual(viaShm.HeadOutputs!.Data.Span), "head outputs differ");
        Assert.Equal(inline.Heads.Select(h => (h.Group, h.Silo, h.Kernel)), viaShm.Heads.Select(h => (h.Group, h.Silo, h.Kernel)));
        Assert.Equal(inline.OutputProjection, viaShm.OutputProjection);
        Assert.Matches("^[0-9a-f]{32}$", viaShm.TraceId);
        Assert.NotEqual(inline.TraceId, viaShm.TraceId);
    }

    [Fact]
    public async Task Eight_concurrent_forwards_on_one_client_each_get_their_own_answer()
    {
        await using var shared = SharedClient(silo);
        var inputs = Enumerable.Range(0, 8).Select(i => RandomInput(100 + i, batch: 1 + i % 2, tokens: 16 + 5 * i, causal: i % 3 == 0, null)).ToArray();
        var expected = new AttentionOutput[inputs.Length];
        for (int i = 0; i < inputs.Length; i++) expected[i] = await _inline.ForwardAsync(Model, inputs[i]);

        for (int round = 0; round < 3; round++)
        {
            var answers = await Task.WhenAll(inputs.Select(input => shared.ForwardAsync(Model, input)));
            for (int i = 0; i < inputs.Length; i++)
            {
                Assert.Equal(expected[i].Output.Shape, answers[i].Output.Shape);
                Assert.True(expected[i].Output.Data.Span.SequenceEqual(answers[i].Output.Data.Span), $"round {round}, pass {i}: Y is not its own");
            }
        }
        Assert.InRange(OurFiles().Count, 1, 8 + 8);
    }

    [Fact]
    public async Task Disposing_the_client_unregisters_its_regions_and_deletes_their_files()
    {
        var before = OurFiles();
        var shared = SharedClient(silo);
        await shared.ForwardAsync(Model, RandomInput(7, 1, 8, causal: true, null));
        var made = OurFiles().Except(before).ToList();
        Assert.Single(made);

        await shared.DisposeAsync();
        Assert.False(File.Exists(Path.Combine("/dev/shm", made[0])), $"{made[0]} is still in /dev/shm");
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        var raw = new Proto.Attention.AttentionClient(channel);
        var error = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() =>
            raw.UnregisterSharedMemoryAsync(new Proto.UnregisterSharedMemoryRequest { Name = made[0] }).ResponseAsync);
        Assert.Equal(Grpc.Core.StatusCode.NotFound, error.StatusCode);
    }

    [Fact]
    public async Task Auto_uses_shared_memory_on_a_loopback_address()
    {
        var before = OurFiles();
        await using var auto = SharedClient(silo, SharedMemoryMode.Auto);
        var input = RandomInput(5, 1, 12, causal: false, null);
        var answer = await auto.ForwardAsync(Model, input);
        Assert.Single(OurFiles().Except(before));
        Assert.True((await _inline.ForwardAsync(Model, input)).Output.Data.Span.SequenceEqual(answer.Output.Data.Span));
    }

    [Fact]
    public async Task A_region_unregistered_while_forwards_use_it_fails_those_calls_cleanly_and_the_silo_serves_on()
    {
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        var raw = new Proto.Attention.AttentionClient(channel);
        var input = RandomInput(9, 2, 64, causal: true, null);
        long bytes = input.Input.Data.Length * 4L;
        using var file = SharedMemoryTestFile.Create(2 * bytes);
        file.Write(0, System.Runtime.InteropServices.MemoryMarshal.AsBytes(input.Input.Data.Span).ToArray());
        var expected = await _inline.ForwardAsync(Model, input with { ReturnAttention = false, ReturnHeadOutputs = false });

        int answered = 0, notFound = 0;
        for (int round = 0; round < 20; round++)
        {
            string name = $"{file.Name}-{round}";
            await raw.RegisterSharedMemoryAsync(new Proto.RegisterSharedMemoryRequest { Name = name, Key = file.Name, ByteSize = 2 * bytes });
            var request = SharedMemoryTestFile.Request(Model, input, name, bytes);
            var forwards = Enumerable.Range(0, 3).Select(_ => raw.ForwardAsync(request).ResponseAsync).ToList();
            await Task.Delay(round % 4);
            await raw.UnregisterSharedMemoryAsync(new Proto.UnregisterSharedMemoryRequest { Name = name });
            foreach (var forward in forwards)
            {
                try
                {
                    await forward;
                    answered++;
                }
                catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.NotFound)
                {
                    Assert.Contains(name, e.Status.Detail);
                    notFound++;
                }
            }
        }
        Assert.Equal(60, answered + notFound);
        Assert.True(file.Read(bytes, bytes).SequenceEqual(System.Runtime.InteropServices.MemoryMarshal.AsBytes(expected.Output.Data.Span).ToArray()) || answered == 0,
            "a call that answered wrote a Y other than the inline one");
        var after = await _inline.ForwardAsync(Model, input with { ReturnAttention = false, ReturnHeadOutputs = false });
        Assert.True(expected.Output.Data.Span.SequenceEqual(after.Output.Data.Span));
    }
}

/// <summary>A file in /dev/shm made for one test, deleted on Dispose.</summary>
internal sealed class SharedMemoryTestFile : IDisposable
{
    private SharedMemoryTestFile(string name) => Name = name;

    public string Name { get; }
    public string Path => System.IO.Path.Combine("/dev/shm", Name);

    public static SharedMemoryTestFile Create(long bytes)
    {
        var file = new SharedMemoryTestFile($"headwise-test-{Guid.NewGuid():N}");
        using var stream = new FileStream(file.Path, FileMode.CreateNew, FileAccess.ReadWrite);
        stream.SetLength(bytes);
        return file;
    }

    public void Write(long offset, byte[] data)
    {
        using var stream = new FileStream(Path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        stream.Position = offset;
        stream.Write(data);
    }

    public byte[] Read(long offset, long count)
    {
        using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Position = offset;
        var data = new byte[count];
        stream.ReadExactly(data);
        return data;
    }

    /// <summary>A forward of <paramref name="input"/> whose X is at offset 0 of <paramref name="region"/> and Y right after.</summary>
    public static Proto.ForwardRequest Request(string model, AttentionInput input, string region, long bytes)
    {
        var tensor = new Proto.Tensor { Dtype = Proto.DType.F32 };
        tensor.Shape.Add(input.Input.Shape.Select(s => (long)s));
        return new Proto.ForwardRequest
        {
            Model = model, Input = tensor, Causal = input.Causal,
            InputShm = new Proto.SharedMemoryRef { Region = region, Offset = 0, ByteSize = bytes },
            OutputShm = new Proto.SharedMemoryRef { Region = region, Offset = bytes, ByteSize = bytes },
        };
    }

    public void Dispose() => File.Delete(Path);
}
