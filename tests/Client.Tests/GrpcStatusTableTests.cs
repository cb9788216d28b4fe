using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Headwise.TestSupport;
using Headwise.V1;

namespace Headwise.Client.Tests;

/// <summary>
/// The error table of the contract, one test per row, through a raw gRPC client as any language would call
/// it: the exact status code, a message naming the field, and afterwards the model still answers correctly.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class GrpcStatusTableTests(SiloFixture silo) : IAsyncLifetime
{
    private const string Served = "table-served";
    private GrpcChannel _channel = null!;
    private Attention.AttentionClient _client = null!;
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-tiny");

    public async Task InitializeAsync()
    {
        _channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        _client = new Attention.AttentionClient(_channel);
        try
        {
            await _client.CreateModelAsync(new CreateModelRequest { Name = Served, Spec = Spec(Golden) });
            using var upload = _client.UploadWeights();
            await upload.RequestStream.WriteAsync(new UploadWeightsRequest
            {
                Header = new UploadHeader { Model = Served, Layout = WeightLayout.Gpt2, Prefix = Golden.Prefix },
            });
            await upload.RequestStream.WriteAsync(new UploadWeightsRequest { Chunk = ByteString.CopyFrom(Golden.Bytes) });
            await upload.RequestStream.CompleteAsync();
            await upload;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.AlreadyExists)
        {
            // another test of this class created it already
        }
    }

    public Task DisposeAsync()
    {
        _channel.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public Task Unknown_model_is_NOT_FOUND() =>
        Expect(StatusCode.NotFound, "no-such-model", () => _client.ForwardAsync(Request(model: "no-such-model")).ResponseAsync);

    [Fact]
    public Task Unknown_layer_is_NOT_FOUND() =>
        Expect(StatusCode.NotFound, "layer 7", () => _client.ForwardAsync(Request(layer: 7)).ResponseAsync);

    [Fact]
    public Task Unknown_model_in_GetModel_is_NOT_FOUND() =>
        Expect(StatusCode.NotFound, "ghost", () => _client.GetModelAsync(new GetModelRequest { Name = "ghost" }).ResponseAsync);

    [Fact]
    public Task Existing_name_is_ALREADY_EXISTS() =>
        Expect(StatusCode.AlreadyExists, Served, () => _client.CreateModelAsync(new CreateModelRequest { Name = Served, Spec = Spec(Golden) }).ResponseAsync);

    [Fact]
    public Task Spec_that_does_not_divide_is_INVALID_ARGUMENT() =>
        Expect(StatusCode.InvalidArgument, "spec.kv_head_count", () => _client.CreateModelAsync(new CreateModelRequest
        {
            Name = "table-bad-spec",
            Spec = new AttentionSpec { ModelDim = 64, HeadCount = 4, KvHeadCount = 3 },
        }).ResponseAsync);

    [Fact]
    public Task Bad_model_name_is_INVALID_ARGUMENT() =>
        Expect(StatusCode.InvalidArgument, "name", () => _client.CreateModelAsync(new CreateModelRequest
        {
            Name = "../etc",
            Spec = new AttentionSpec { ModelDim = 64, HeadCount = 4 },
        }).ResponseAsync);

    [Fact]
    public Task Wrong_rank_is_INVALID_ARGUMENT() =>
        Expect(StatusCode.InvalidArgument, "input.shape", () => _client.ForwardAsync(Request(input: Tensor([9, 64], new float[9 * 64]))).ResponseAsync);

    [Fact]
    public Task Wrong_model_dim_is_INVALID_ARGUMENT() =>
        Expect(StatusCode.InvalidArgument, "input.shape[2]", () => _client.ForwardAsync(Request(input: Tensor([1, 9, 32], new float[9 * 32]))).ResponseAsync);

    [Fact]
    public Task Unknown_dtype_is_INVALID_ARGUMENT()
    {
        var input = Tensor([1, 9, 64], new float[9 * 64]);
        input.Dtype = (DType)7;
        return Expect(StatusCode.InvalidArgument, "input.dtype", () => _client.ForwardAsync(Request(input: input)).ResponseAsync);
    }

    [Fact]
    public Task Data_length_that_does_not_match_the_shape_and_dtype_is_INVALID_ARGUMENT()
    {
        var input = Tensor([1, 9, 64], new float[9 * 64]);
        input.Dtype = DType.F16; // 2 bytes per value: twice as many bytes as the shape needs
        return Expect(StatusCode.InvalidArgument, "input.data", () => _client.ForwardAsync(Request(input: input)).ResponseAsync);
    }

    [Fact]
    public Task NaN_input_is_INVALID_ARGUMENT()
    {
        var values = (float[])Golden.Input.Clone();
        values[100] = float.NaN;
        return Expect(StatusCode.InvalidArgument, "index 100", () => _client.ForwardAsync(Request(input: Tensor([2, 9, 64], values))).ResponseAsync);
    }

    [Fact]
    public Task Infinite_input_is_INVALID_ARGUMENT()
    {
        var values = (float[])Golden.Input.Clone();
        values[5] = float.NegativeInfinity;
        return Expect(StatusCode.InvalidArgument, "input.data", () => _client.ForwardAsync(Request(input: Tensor([2, 9, 64], values))).ResponseAsync);
    }

    [Fact]
    public Task Lengths_out_of_range_are_INVALID_ARGUMENT()
    {
        var request = Request();
        request.Lengths.Add([9, 10]);
        return Expect(StatusCode.InvalidArgument, "lengths[1]", () => _client.ForwardAsync(request).ResponseAsync);
    }

    [Fact]
    public Task Zero_length_is_INVALID_ARGUMENT()
    {
        var request = Request();
        request.Lengths.Add([0, 9]);
        return Expect(StatusCode.InvalidArgument, "lengths[0]", () => _client.ForwardAsync(request).ResponseAsync);
    }

    [Fact]
    public Task Zero_tokens_are_INVALID_ARGUMENT() =>
        Expect(StatusCode.InvalidArgument, "tokens", () => _client.ForwardAsync(Request(input: Tensor([1, 0, 64], []))).ResponseAsync);

    [Fact]
    public async Task Forward_before_weights_is_FAILED_PRECONDITION()
    {
        await _client.CreateModelAsync(new CreateModelRequest { Name = "table-empty", Spec = Spec(Golden) });
        await Expect(StatusCode.FailedPrecondition, "upload", () => _client.ForwardAsync(Request(model: "table-empty")).ResponseAsync);
    }

    [Fact]
    public Task Tokens_over_the_limit_are_RESOURCE_EXHAUSTED()
    {
        int tokens = SiloFixture.MaxTokens + 1;
        return Expect(StatusCode.ResourceExhausted, "Headwise__MaxTokens",
            () => _client.ForwardAsync(Request(input: Tensor([1, tokens, 64], new float[tokens * 64]))).ResponseAsync);
    }

    [Fact]
    public Task Batch_over_the_limit_is_RESOURCE_EXHAUSTED()
    {
        int batch = SiloFixture.MaxBatch + 1;
        return Expect(StatusCode.ResourceExhausted, "Headwise__MaxBatch",
            () => _client.ForwardAsync(Request(input: Tensor([batch, 1, 64], new float[batch * 64]))).ResponseAsync);
    }

    [Fact]
    public Task Request_bytes_over_the_limit_are_RESOURCE_EXHAUSTED()
    {
        // Batch and tokens at their limits; one more column than fits in Headwise__MaxRequestBytes.
        int batch = SiloFixture.MaxBatch, tokens = SiloFixture.MaxTokens;
        int width = SiloFixture.MaxRequestBytes / (batch * tokens * sizeof(float)) + 1;
        return Expect(StatusCode.ResourceExhausted, "Headwise__MaxRequestBytes",
            () => _client.ForwardAsync(Request(input: Tensor([batch, tokens, width], new float[batch * tokens * width]))).ResponseAsync);
    }

    [Fact]
    public async Task Upload_with_a_missing_tensor_is_INVALID_ARGUMENT()
    {
        var partial = SafetensorsWriterFor(Golden, skip: "h.0.attn.c_attn.bias");
        using var upload = _client.UploadWeights();
        await upload.RequestStream.WriteAsync(new UploadWeightsRequest
        {
            Header = new UploadHeader { Model = Served, Layout = WeightLayout.Gpt2, Prefix = Golden.Prefix },
        });
        await upload.RequestStream.WriteAsync(new UploadWeightsRequest { Chunk = ByteString.CopyFrom(partial) });
        await upload.RequestStream.CompleteAsync();
        await Expect(StatusCode.InvalidArgument, "h.0.attn.c_attn.bias", () => upload.ResponseAsync);
    }

    [Fact]
    public async Task Upload_without_a_header_is_INVALID_ARGUMENT()
    {
        using var upload = _client.UploadWeights();
        await upload.RequestStream.WriteAsync(new UploadWeightsRequest { Chunk = ByteString.CopyFrom(Golden.Bytes) });
        await upload.RequestStream.CompleteAsync();
        await Expect(StatusCode.InvalidArgument, "header", () => upload.ResponseAsync);
    }

    private async Task Expect(StatusCode code, string fieldInMessage, Func<Task> call)
    {
        var error = await Assert.ThrowsAsync<RpcException>(call);
        Assert.Equal(code, error.StatusCode);
        Assert.Contains(fieldInMessage, error.Status.Detail);
        await AssertStillServes();
    }

    private async Task AssertStillServes()
    {
        var response = await _client.ForwardAsync(Request(causal: true));
        Tolerance.AssertClose(Golden.Expected("expected.0.causal"),
            Contracts.FloatBytes.AsFloats(response.Output.Data.Span), "the served model after the error");
    }

    private static ForwardRequest Request(string model = Served, int layer = 0, Tensor? input = null, bool causal = false) => new()
    {
        Model = model,
        Layer = layer,
        Input = input ?? Tensor([Golden.Batch, Golden.Tokens, 64], Golden.Input),
        Causal = causal,
    };

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

    private static byte[] SafetensorsWriterFor(GoldenCase golden, string skip) =>
        Contracts.SafetensorsWriter.ToBytes(golden.File.Tensors.Values
            .Where(t => t.Name != skip)
            .Select(t => new Contracts.SafetensorsEntry(t.Name, t.DType, t.Shape, t.Data.ToArray())));
}
