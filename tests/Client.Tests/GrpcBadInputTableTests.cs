using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Headwise.TestSupport;
using Headwise.V1;

namespace Headwise.Client.Tests;

/// <summary>
/// Hostile and malformed input through a raw gRPC client, table-driven: every row names the call, the exact
/// status the gateway must answer and a word the message must contain (the field at fault). After every row the
/// served model still answers the golden case correctly. Complements <see cref="GrpcStatusTableTests"/>.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class GrpcBadInputTableTests(SiloFixture silo) : IAsyncLifetime
{
    private const string Served = "bad-input-served";
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-tiny");
    private GrpcChannel _channel = null!;
    private Attention.AttentionClient _client = null!;

    /// <summary>One row: the call, the status it must fail with, and a word its message must contain.</summary>
    private sealed record Row(StatusCode Code, string Field, Func<Attention.AttentionClient, Task> Call);

    private static readonly Dictionary<string, Row> Rows = new()
    {
        // Model names: they become grain and storage keys, so separators, dots, control characters and length are refused.
        ["create: name with '/'"] = new(StatusCode.InvalidArgument, "name", c => Create(c, "a/b")),
        ["create: name '..'"] = new(StatusCode.InvalidArgument, "name", c => Create(c, "..")),
        ["create: name '../x'"] = new(StatusCode.InvalidArgument, "name", c => Create(c, "../x")),
        ["create: name with a control character"] = new(StatusCode.InvalidArgument, "name", c => Create(c, "a\u0001b")),
        ["create: name with a newline"] = new(StatusCode.InvalidArgument, "name", c => Create(c, "a\nb")),
        ["create: name of 10 kB"] = new(StatusCode.InvalidArgument, "name", c => Create(c, new string('m', 10_000))),
        ["create: empty name"] = new(StatusCode.InvalidArgument, "name", c => Create(c, "")),
        ["create: name with a space"] = new(StatusCode.InvalidArgument, "name", c => Create(c, "a b")),
        ["create: non-ASCII name"] = new(StatusCode.InvalidArgument, "name", c => Create(c, "modèle")),
        ["get: name with '/'"] = new(StatusCode.InvalidArgument, "name", c => c.GetModelAsync(new GetModelRequest { Name = Served + "/0" }).ResponseAsync),
        ["delete: name '..'"] = new(StatusCode.InvalidArgument, "name", c => c.DeleteModelAsync(new DeleteModelRequest { Name = ".." }).ResponseAsync),
        ["delete: unknown model"] = new(StatusCode.NotFound, "never-created", c => c.DeleteModelAsync(new DeleteModelRequest { Name = "never-created" }).ResponseAsync),
        ["forward: model with '/'"] = new(StatusCode.InvalidArgument, "model", c => c.ForwardAsync(Request(model: Served + "/0")).ResponseAsync),
        ["forward: model of 10 kB"] = new(StatusCode.InvalidArgument, "model", c => c.ForwardAsync(Request(model: new string('m', 10_000))).ResponseAsync),
        ["upload: header.model '..'"] = new(StatusCode.InvalidArgument, "header.model", c => Upload(c, "..", Golden.Bytes)),

        // Specs.
        ["create: spec missing"] = new(StatusCode.InvalidArgument, "spec", c => c.CreateModelAsync(new CreateModelRequest { Name = "bad-spec" }).ResponseAsync),
        ["create: model_dim not divisible by head_count"] = new(StatusCode.InvalidArgument, "spec.head_dim", c => Create(c, "bad-spec", new AttentionSpec { ModelDim = 65, HeadCount = 4 })),
        ["create: kv_head_count does not divide head_count"] = new(StatusCode.InvalidArgument, "spec.kv_head_count", c => Create(c, "bad-spec", new AttentionSpec { ModelDim = 64, HeadCount = 4, KvHeadCount = 3 })),
        ["create: huge model_dim"] = new(StatusCode.InvalidArgument, "spec.model_dim", c => Create(c, "bad-spec", new AttentionSpec { ModelDim = int.MaxValue, HeadCount = 1 })),
        ["create: huge head_count"] = new(StatusCode.InvalidArgument, "spec.head_count", c => Create(c, "bad-spec", new AttentionSpec { ModelDim = 65536, HeadCount = 65536 })),
        ["create: huge head_dim"] = new(StatusCode.InvalidArgument, "spec.head_dim", c => Create(c, "bad-spec", new AttentionSpec { ModelDim = 64, HeadCount = 64, HeadDim = 65536 })),
        ["create: huge layer_count"] = new(StatusCode.InvalidArgument, "spec.layer_count", c => Create(c, "bad-spec", new AttentionSpec { ModelDim = 64, HeadCount = 4, LayerCount = 1 << 20 })),
        ["create: zero head_count"] = new(StatusCode.InvalidArgument, "spec.head_count", c => Create(c, "bad-spec", new AttentionSpec { ModelDim = 64 })),
        ["create: negative window"] = new(StatusCode.InvalidArgument, "spec.window", c => Create(c, "bad-spec", new AttentionSpec { ModelDim = 64, HeadCount = 4, Window = -1 })),
        ["create: NaN scale"] = new(StatusCode.InvalidArgument, "spec.scale", c => Create(c, "bad-spec", new AttentionSpec { ModelDim = 64, HeadCount = 4, Scale = float.NaN })),

        // Forward inputs.
        ["forward: input missing"] = new(StatusCode.InvalidArgument, "input", c => c.ForwardAsync(new ForwardRequest { Model = Served }).ResponseAsync),
        ["forward: rank 4"] = new(StatusCode.InvalidArgument, "input.shape", c => c.ForwardAsync(Request(input: Tensor([1, 2, 9, 64], new float[2 * 9 * 64]))).ResponseAsync),
        ["forward: negative dimension"] = new(StatusCode.InvalidArgument, "input.shape[1]", c => c.ForwardAsync(Request(input: Tensor([1, -9, 64], []))).ResponseAsync),
        ["forward: batch 0"] = new(StatusCode.InvalidArgument, "input.shape[0]", c => c.ForwardAsync(Request(input: Tensor([0, 9, 64], []))).ResponseAsync),
        ["forward: shape overflowing int"] = new(StatusCode.ResourceExhausted, "input.shape", c => c.ForwardAsync(Request(input: Tensor([1 << 20, 1 << 20, 64], []))).ResponseAsync),
        ["forward: BF16 with F32-sized data"] = new(StatusCode.InvalidArgument, "input.data", c => c.ForwardAsync(Request(input: Retyped(DType.Bf16))).ResponseAsync),
        ["forward: dtype out of the enum"] = new(StatusCode.InvalidArgument, "input.dtype", c => c.ForwardAsync(Request(input: Retyped((DType)9))).ResponseAsync),
        ["forward: data shorter than the shape"] = new(StatusCode.InvalidArgument, "input.data", c => c.ForwardAsync(Request(input: Truncated())).ResponseAsync),
        ["forward: lengths count differs from batch"] = new(StatusCode.InvalidArgument, "lengths", c => c.ForwardAsync(WithLengths(9)).ResponseAsync),
        ["forward: negative length"] = new(StatusCode.InvalidArgument, "lengths[0]", c => c.ForwardAsync(WithLengths(-1, 9)).ResponseAsync),
        ["forward: negative layer"] = new(StatusCode.NotFound, "layer", c => c.ForwardAsync(Request(layer: -1)).ResponseAsync),
        ["forward: positive infinity"] = new(StatusCode.InvalidArgument, "input.data", c => c.ForwardAsync(Request(input: WithValue(17, float.PositiveInfinity))).ResponseAsync),
        ["forward: NaN in the last value"] = new(StatusCode.InvalidArgument, "input.data", c => c.ForwardAsync(Request(input: WithValue(Golden.Input.Length - 1, float.NaN))).ResponseAsync),
        ["forward: tokens over the limit at a small width"] = new(StatusCode.ResourceExhausted, "Headwise__MaxTokens", c => c.ForwardAsync(Request(input: Tensor([1, SiloFixture.MaxTokens + 1, 1], new float[SiloFixture.MaxTokens + 1]))).ResponseAsync),

        // Uploads.
        ["upload: mis-shaped tensor"] = new(StatusCode.InvalidArgument, "h.0.attn.c_attn.weight", c => Upload(c, Served, Replace("h.0.attn.c_attn.weight", SafetensorsDTypeF32, [64, 64]))),
        ["upload: wrong dtype"] = new(StatusCode.InvalidArgument, "h.0.attn.c_proj.weight", c => Upload(c, Served, Replace("h.0.attn.c_proj.weight", Contracts.SafetensorsDType.I32, null))),
        ["upload: missing output projection"] = new(StatusCode.InvalidArgument, "h.0.attn.c_proj.weight", c => Upload(c, Served, Without("h.0.attn.c_proj.weight"))),
        ["upload: wrong prefix finds nothing"] = new(StatusCode.InvalidArgument, "nope.0.", c => Upload(c, Served, Golden.Bytes, prefix: "nope.{layer}.")),
        ["upload: truncated stream"] = new(StatusCode.InvalidArgument, "data_offsets", c => Upload(c, Served, Golden.Bytes[..(Golden.Bytes.Length / 2)])),
        ["upload: header-only stream"] = new(StatusCode.InvalidArgument, "chunk", c => Upload(c, Served, [])),
        ["upload: random bytes"] = new(StatusCode.InvalidArgument, "safetensors", c => Upload(c, Served, RandomBytes(4096))),
        ["upload: header twice"] = new(StatusCode.InvalidArgument, "header", c => UploadHeaderTwice(c)),
        ["upload: unknown layout"] = new(StatusCode.InvalidArgument, "layout", c => Upload(c, Served, Golden.Bytes, layout: (WeightLayout)42)),
        ["upload: unknown model"] = new(StatusCode.NotFound, "never-created", c => Upload(c, "never-created", Golden.Bytes)),
        ["upload: empty stream"] = new(StatusCode.InvalidArgument, "header", c => UploadNothing(c)),
    };

    public static TheoryData<string> Names => new(Rows.Keys);

    public async Task InitializeAsync()
    {
        _channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        _client = new Attention.AttentionClient(_channel);
        try
        {
            await Create(_client, Served, Spec(Golden));
            await Upload(_client, Served, Golden.Bytes);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.AlreadyExists)
        {
            // another row of this class created it already
        }
    }

    public Task DisposeAsync()
    {
        _channel.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public void The_table_has_at_least_30_rows() => Assert.True(Rows.Count >= 30, $"{Rows.Count} rows");

    [Theory]
    [MemberData(nameof(Names))]
    public async Task Bad_input_gets_its_status_and_the_model_still_serves(string name)
    {
        var row = Rows[name];
        var error = await Assert.ThrowsAsync<RpcException>(() => row.Call(_client));
        Assert.Equal(row.Code, error.StatusCode);
        Assert.Contains(row.Field, error.Status.Detail);
        Assert.True(error.Status.Detail.Length < 1024, $"a {error.Status.Detail.Length}-character message echoes the input");
        Assert.DoesNotContain('\n', error.Status.Detail);
        await AssertStillServes();
    }

    [Fact]
    public async Task Upload_with_extra_tensors_is_accepted_and_changes_nothing()
    {
        // Tensors the layout does not use (MLP weights, other layers) are ignored by contract.
        var entries = Entries(Golden).Append(Contracts.SafetensorsEntry.F32("h.0.mlp.c_fc.weight", new float[64 * 4], 64, 4))
            .Append(Contracts.SafetensorsEntry.F32("h.7.attn.c_attn.weight", new float[64 * 192], 64, 192));
        await Upload(_client, Served, Contracts.SafetensorsWriter.ToBytes(entries));
        await AssertStillServes();
    }

    private async Task AssertStillServes()
    {
        var response = await _client.ForwardAsync(Request(causal: true));
        Tolerance.AssertClose(Golden.Expected("expected.0.causal"),
            Contracts.FloatBytes.AsFloats(response.Output.Data.Span), "the served model after the error");
    }

    private const Contracts.SafetensorsDType SafetensorsDTypeF32 = Contracts.SafetensorsDType.F32;

    private static Task Create(Attention.AttentionClient client, string name, AttentionSpec? spec = null) =>
        client.CreateModelAsync(new CreateModelRequest { Name = name, Spec = spec ?? new AttentionSpec { ModelDim = 64, HeadCount = 4 } }).ResponseAsync;

    private static async Task Upload(Attention.AttentionClient client, string model, byte[] file, string? prefix = null,
        WeightLayout layout = WeightLayout.Gpt2)
    {
        using var upload = client.UploadWeights();
        try
        {
            await upload.RequestStream.WriteAsync(new UploadWeightsRequest
            {
                Header = new UploadHeader { Model = model, Layout = layout, Prefix = prefix ?? Golden.Prefix },
            });
            // In pieces, as the SDK sends them.
            for (int at = 0; at < file.Length; at += 64 << 10)
                await upload.RequestStream.WriteAsync(new UploadWeightsRequest { Chunk = ByteString.CopyFrom(file, at, Math.Min(64 << 10, file.Length - at)) });
            await upload.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            // the server answered before the stream ended; its status is the call's
        }
        await upload.ResponseAsync;
    }

    private static async Task UploadHeaderTwice(Attention.AttentionClient client)
    {
        using var upload = client.UploadWeights();
        var header = new UploadWeightsRequest { Header = new UploadHeader { Model = Served, Layout = WeightLayout.Gpt2, Prefix = Golden.Prefix } };
        await upload.RequestStream.WriteAsync(header);
        await upload.RequestStream.WriteAsync(header);
        await upload.RequestStream.CompleteAsync();
        await upload.ResponseAsync;
    }

    private static async Task UploadNothing(Attention.AttentionClient client)
    {
        using var upload = client.UploadWeights();
        await upload.RequestStream.CompleteAsync();
        await upload.ResponseAsync;
    }

    private static ForwardRequest Request(string model = Served, int layer = 0, Tensor? input = null, bool causal = false) => new()
    {
        Model = model,
        Layer = layer,
        Input = input ?? Tensor([Golden.Batch, Golden.Tokens, 64], Golden.Input),
        Causal = causal,
    };

    private static ForwardRequest WithLengths(params int[] lengths)
    {
        var request = Request();
        request.Lengths.Add(lengths);
        return request;
    }

    private static Tensor Retyped(DType dtype)
    {
        var tensor = Tensor([Golden.Batch, Golden.Tokens, 64], Golden.Input);
        tensor.Dtype = dtype;
        return tensor;
    }

    private static Tensor Truncated()
    {
        var tensor = Tensor([Golden.Batch, Golden.Tokens, 64], Golden.Input);
        tensor.Data = ByteString.CopyFrom(tensor.Data.Span[..^4]);
        return tensor;
    }

    private static Tensor WithValue(int index, float value)
    {
        var values = (float[])Golden.Input.Clone();
        values[index] = value;
        return Tensor([Golden.Batch, Golden.Tokens, 64], values);
    }

    private static Tensor Tensor(long[] shape, float[] values)
    {
        var tensor = new Tensor { Dtype = DType.F32, Data = ByteString.CopyFrom(Contracts.FloatBytes.ToBytes(values)) };
        tensor.Shape.Add(shape);
        return tensor;
    }

    private static AttentionSpec Spec(GoldenCase golden) => new()
    {
        ModelDim = golden.Spec.ModelDim,
        HeadCount = golden.Spec.HeadCount,
        LayerCount = golden.Spec.LayerCount,
        Bias = golden.Spec.Bias,
    };

    private static IEnumerable<Contracts.SafetensorsEntry> Entries(GoldenCase golden) =>
        golden.File.Tensors.Values.Select(t => new Contracts.SafetensorsEntry(t.Name, t.DType, t.Shape, t.Data.ToArray()));

    private static byte[] Without(string name) =>
        Contracts.SafetensorsWriter.ToBytes(Entries(Golden).Where(e => e.Name != name));

    /// <summary>The golden file with one tensor swapped for zeros of another dtype or shape.</summary>
    private static byte[] Replace(string name, Contracts.SafetensorsDType dtype, long[]? shape) =>
        Contracts.SafetensorsWriter.ToBytes(Entries(Golden).Select(e =>
        {
            if (e.Name != name) return e;
            long[] newShape = shape ?? e.Shape.ToArray();
            long count = newShape.Aggregate(1L, (a, b) => a * b);
            return new Contracts.SafetensorsEntry(name, dtype, newShape, new byte[count * 4]);
        }));

    private static byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        new Random(6).NextBytes(bytes);
        return bytes;
    }
}
