using Grpc.Core;
using Grpc.Net.Client;
using Headwise.Silo;
using Headwise.TestSupport;
using Microsoft.AspNetCore.Builder;
using Proto = Headwise.V1;

namespace Headwise.Client.Tests;

/// <summary>
/// Every refusal of the shared-memory calls through the proto's own client (no SDK, no retries): each row names the
/// call, the exact status and a word the message must contain. After every row the served model still answers.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class SharedMemoryStatusTableTests(SiloFixture silo) : IAsyncLifetime
{
    private const string Model = "shm-status";
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-tiny");
    private static readonly long XBytes = (long)Golden.Batch * Golden.Tokens * Golden.Spec.ModelDim * sizeof(float);

    private GrpcChannel _channel = null!;
    private Proto.Attention.AttentionClient _client = null!;
    private SharedMemoryTestFile _file = null!;
    private string Region => _file.Name;

    public async Task InitializeAsync()
    {
        _channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        _client = new Proto.Attention.AttentionClient(_channel);
        await using var sdk = silo.CreateGrpcClient();
        if (!(await sdk.ListModelsAsync()).Any(m => m.Name == Model))
        {
            await sdk.CreateModelAsync(Model, Golden.Spec);
            await sdk.UploadWeightsAsync(Model, new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
        }
        _file = SharedMemoryTestFile.Create(2 * XBytes);
        _file.Write(0, System.Runtime.InteropServices.MemoryMarshal.AsBytes(Golden.Input.AsSpan()).ToArray());
        await _client.RegisterSharedMemoryAsync(new Proto.RegisterSharedMemoryRequest { Name = Region, Key = _file.Name, ByteSize = 2 * XBytes });
    }

    public async Task DisposeAsync()
    {
        await _client.UnregisterSharedMemoryAsync(new Proto.UnregisterSharedMemoryRequest { Name = Region });
        _file.Dispose();
        _channel.Dispose();
    }

    private sealed record Row(StatusCode Code, string Word, Func<SharedMemoryStatusTableTests, Task> Call);

    private Task Register(string name, string key, long byteSize) =>
        _client.RegisterSharedMemoryAsync(new Proto.RegisterSharedMemoryRequest { Name = name, Key = key, ByteSize = byteSize }).ResponseAsync;

    private Task<Proto.ForwardResponse> Forward(Action<Proto.ForwardRequest> change)
    {
        var request = SharedMemoryTestFile.Request(Model, new AttentionInput
        {
            Input = new FloatTensor(Golden.Input, Golden.Batch, Golden.Tokens, Golden.Spec.ModelDim),
        }, Region, XBytes);
        change(request);
        return _client.ForwardAsync(request).ResponseAsync;
    }

    private static readonly Dictionary<string, Row> Rows = new()
    {
        ["register: key with '/'"] = new(StatusCode.InvalidArgument, "key", t => t.Register("r1", "../etc/passwd", 8)),
        ["register: key '..'"] = new(StatusCode.InvalidArgument, "key", t => t.Register("r1", "..", 8)),
        ["register: key '.'"] = new(StatusCode.InvalidArgument, "key", t => t.Register("r1", ".", 8)),
        ["register: key with NUL"] = new(StatusCode.InvalidArgument, "key", t => t.Register("r1", "a\0b", 8)),
        ["register: empty key"] = new(StatusCode.InvalidArgument, "key", t => t.Register("r1", "", 8)),
        ["register: key of 300 characters"] = new(StatusCode.InvalidArgument, "key", t => t.Register("r1", new string('k', 300), 8)),
        ["register: name with '/'"] = new(StatusCode.InvalidArgument, "name", t => t.Register("a/b", t._file.Name, 8)),
        ["register: missing file"] = new(StatusCode.NotFound, "no such file", t => t.Register("r1", $"headwise-missing-{Guid.NewGuid():N}", 8)),
        ["register: file shorter than byte_size"] = new(StatusCode.InvalidArgument, "byte_size", t => t.Register("r1", t._file.Name, 2 * XBytes + 1)),
        ["register: byte_size 0"] = new(StatusCode.InvalidArgument, "byte_size", t => t.Register("r1", t._file.Name, 0)),
        ["register: name taken"] = new(StatusCode.AlreadyExists, "registered already", t => t.Register(t.Region, t._file.Name, 8)),
        ["register: symbolic link"] = new(StatusCode.InvalidArgument, "symbolic link", t => t.RegisterLink()),
        ["unregister: unknown name"] = new(StatusCode.NotFound, "never-registered",
            t => t._client.UnregisterSharedMemoryAsync(new Proto.UnregisterSharedMemoryRequest { Name = "never-registered" }).ResponseAsync),
        ["forward: unknown input region"] = new(StatusCode.NotFound, "input_shm.region", t => t.Forward(r => r.InputShm.Region = "nope")),
        ["forward: unknown output region"] = new(StatusCode.NotFound, "output_shm.region", t => t.Forward(r => r.OutputShm.Region = "nope")),
        ["forward: input range past the region"] = new(StatusCode.InvalidArgument, "input_shm", t => t.Forward(r => r.InputShm.Offset = XBytes + 4)),
        ["forward: negative offset"] = new(StatusCode.InvalidArgument, "input_shm", t => t.Forward(r => r.InputShm.Offset = -4)),
        ["forward: output range past the region"] = new(StatusCode.InvalidArgument, "output_shm", t => t.Forward(r => r.OutputShm.Offset = XBytes + 4)),
        ["forward: input byte_size not shape × dtype"] = new(StatusCode.InvalidArgument, "input_shm.byte_size", t => t.Forward(r => r.InputShm.ByteSize = XBytes - 4)),
        ["forward: input as F16 with F32's size"] = new(StatusCode.InvalidArgument, "DTYPE_F16", t => t.Forward(r => r.Input.Dtype = Proto.DType.F16)),
        ["forward: output byte_size not Y's"] = new(StatusCode.InvalidArgument, "output_shm.byte_size", t => t.Forward(r => r.OutputShm.ByteSize = XBytes / 2)),
        ["forward: inline data and input_shm"] = new(StatusCode.InvalidArgument, "input.data",
            t => t.Forward(r => r.Input.Data = Google.Protobuf.ByteString.CopyFrom(new byte[XBytes]))),
        ["forward: empty region name"] = new(StatusCode.InvalidArgument, "input_shm.region", t => t.Forward(r => r.InputShm.Region = "")),
    };

    public static TheoryData<string> RowNames => new(Rows.Keys);

    private async Task RegisterLink()
    {
        string link = Path.Combine("/dev/shm", $"headwise-link-{Guid.NewGuid():N}");
        File.CreateSymbolicLink(link, _file.Path);
        try
        {
            await Register("r1", Path.GetFileName(link), 8);
        }
        finally
        {
            File.Delete(link);
        }
    }

    [Theory]
    [MemberData(nameof(RowNames))]
    public async Task Refused_with_a_precise_status(string row)
    {
        var (code, word, call) = Rows[row];
        var error = await Assert.ThrowsAsync<RpcException>(() => call(this));
        Assert.Equal(code, error.StatusCode);
        Assert.Contains(word, error.Status.Detail);

        // Nothing was registered by a refusal, and the region still serves a correct forward.
        await Assert.ThrowsAsync<RpcException>(() => _client.UnregisterSharedMemoryAsync(new Proto.UnregisterSharedMemoryRequest { Name = "r1" }).ResponseAsync);
        var answer = await Forward(_ => { });
        Assert.Empty(answer.Output.Data);
        Assert.Equal([Golden.Batch, Golden.Tokens, Golden.Spec.ModelDim], answer.Output.Shape);
        var y = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(_file.Read(XBytes, XBytes));
        Tolerance.AssertClose(Golden.Expected("expected.0.full"), y, $"{row}: Y in shared memory");
    }

    [Fact]
    public async Task The_region_limit_is_RESOURCE_EXHAUSTED_and_unregistering_frees_a_slot()
    {
        var names = new List<string>();
        try
        {
            RpcException? refused = null;
            for (int i = 0; i <= SiloFixture.MaxSharedMemoryRegions && refused is null; i++)
            {
                string name = $"{Region}-limit-{i}";
                try
                {
                    await Register(name, _file.Name, 8);
                    names.Add(name);
                }
                catch (RpcException e)
                {
                    refused = e;
                }
            }
            Assert.NotNull(refused);
            Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
            Assert.Contains("Headwise__MaxSharedMemoryRegions", refused.Status.Detail);

            await _client.UnregisterSharedMemoryAsync(new Proto.UnregisterSharedMemoryRequest { Name = names[^1] });
            names.RemoveAt(names.Count - 1);
            await Register($"{Region}-limit-again", _file.Name, 8);
            names.Add($"{Region}-limit-again");
        }
        finally
        {
            foreach (var name in names) await _client.UnregisterSharedMemoryAsync(new Proto.UnregisterSharedMemoryRequest { Name = name });
        }
    }
}

/// <summary>Leftovers of a client that died without unregistering: once their file is deleted, the limit frees their slots.</summary>
[Collection(SiloCollection.Name)]
public sealed class SharedMemoryLeftoverTests(SiloFixture silo)
{
    [Fact]
    public async Task At_the_limit_registrations_whose_file_is_gone_are_dropped()
    {
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        var client = new Proto.Attention.AttentionClient(channel);
        using var kept = SharedMemoryTestFile.Create(64);
        var leftover = SharedMemoryTestFile.Create(64);
        var names = new List<string>();
        try
        {
            for (int i = 0; ; i++)
            {
                string name = $"{leftover.Name}-{i}";
                try
                {
                    await client.RegisterSharedMemoryAsync(new Proto.RegisterSharedMemoryRequest { Name = name, Key = leftover.Name, ByteSize = 64 });
                    names.Add(name);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
                {
                    break;
                }
                Assert.True(i <= SiloFixture.MaxSharedMemoryRegions, "the region limit never refused");
            }
            Assert.NotEmpty(names);
        }
        finally
        {
            leftover.Dispose();
        }

        await client.RegisterSharedMemoryAsync(new Proto.RegisterSharedMemoryRequest { Name = kept.Name, Key = kept.Name, ByteSize = 64 });
        await client.UnregisterSharedMemoryAsync(new Proto.UnregisterSharedMemoryRequest { Name = kept.Name });
        foreach (var name in names)
        {
            var gone = await Assert.ThrowsAsync<RpcException>(() =>
                client.UnregisterSharedMemoryAsync(new Proto.UnregisterSharedMemoryRequest { Name = name }).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, gone.StatusCode);
        }
    }
}

/// <summary>A silo with Headwise__SharedMemory=false: every shared-memory call is FAILED_PRECONDITION saying how to enable it.</summary>
public sealed class SharedMemoryOffTests : IAsyncLifetime
{
    private WebApplication? _silo;
    private Uri _address = null!;

    public async Task InitializeAsync()
    {
        var ports = FreePorts.Take(4);
        _silo = HeadwiseSilo.Build(
        [
            $"--Headwise:SiloPort={ports[0]}", $"--Headwise:GatewayPort={ports[1]}",
            $"--Headwise:GrpcPort={ports[2]}", $"--Headwise:WebPort={ports[3]}",
            "--Headwise:DemoModel=false", "--Headwise:SharedMemory=false", "--Logging:LogLevel:Default=Warning",
        ]);
        await _silo.StartAsync();
        _address = new Uri($"http://127.0.0.1:{ports[2]}");
    }

    public async Task DisposeAsync()
    {
        if (_silo is null) return;
        await _silo.StopAsync();
        await _silo.DisposeAsync();
    }

    [Fact]
    public async Task Register_and_a_forward_with_references_are_FAILED_PRECONDITION_naming_the_setting()
    {
        using var file = SharedMemoryTestFile.Create(1024);
        using var channel = GrpcChannel.ForAddress(_address);
        var client = new Proto.Attention.AttentionClient(channel);
        var register = await Assert.ThrowsAsync<RpcException>(() => client.RegisterSharedMemoryAsync(
            new Proto.RegisterSharedMemoryRequest { Name = "r", Key = file.Name, ByteSize = 1024 }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, register.StatusCode);
        Assert.Contains("Headwise__SharedMemory=true", register.Status.Detail);

        var tensor = new Proto.Tensor { Dtype = Proto.DType.F32, Shape = { 1, 1, 4 } };
        var forward = await Assert.ThrowsAsync<RpcException>(() => client.ForwardAsync(new Proto.ForwardRequest
        {
            Model = "any", Input = tensor, InputShm = new Proto.SharedMemoryRef { Region = "r", ByteSize = 16 },
        }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, forward.StatusCode);
        Assert.Contains("Headwise__SharedMemory=true", forward.Status.Detail);

        // The SDK in Auto falls back to inline tensors against such a silo (here: no model, so NOT_FOUND, not a shm error).
        await using var auto = new GrpcAttentionClient(_address, new GrpcAttentionClientOptions { SharedMemory = SharedMemoryMode.Auto });
        var missing = await Assert.ThrowsAsync<Contracts.HeadwiseException>(() => auto.ForwardAsync("absent",
            new AttentionInput { Input = new FloatTensor(new float[4], 1, 1, 4) }));
        Assert.Equal(Contracts.ErrorCode.NotFound, missing.Code);
    }
}
