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
    /// <summary>16 heads of 64 over D = 64: per-head outputs 16 times the size of X.</summary>
    private const string Wide = "bad-input-wide";
    private static readonly Contracts.AttentionSpec WideSpec = new Contracts.AttentionSpec { ModelDim = 64, HeadCount = 16, HeadDim = 64 }.Resolve();
    private const string LinearPrefix = "model.layers.{layer}.self_attn.";
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-tiny");

    /// <summary>3 MiB of one letter: a value far past every length limit.</summary>
    private static readonly string Huge = new('p', 3 << 20);

    /// <summary>A 100 MiB safetensors header naming about two million empty tensors, built once.</summary>
    private static readonly Lazy<byte[]> EmptyTensorsHeader = new(() =>
    {
        var json = new System.Text.StringBuilder(100 << 20);
        json.Append('{');
        for (int i = 0; json.Length < (100 << 20) - 64; i++)
            json.Append(i == 0 ? "" : ",").Append($"\"t{i}\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}");
        json.Append('}');
        return HeaderOnly(json.ToString());
    });

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

        // Finite but huge: past ±1.8e19 (√ of float32's largest) Q·Kᵀ overflows, so such X is refused before the pass; below
        // it, a pass that still overflows is refused after it. Neither returns NaN or infinity as a success.
        ["forward: every value +3e38"] = new(StatusCode.InvalidArgument, "input.data holds 3E+38 at flat index 0; values beyond ±1.84E+19", c => c.ForwardAsync(Request(input: Filled(Golden.Batch, Golden.Tokens, 3e38f))).ResponseAsync),
        ["forward: every value -3e38"] = new(StatusCode.InvalidArgument, "input.data holds -3E+38 at flat index 0", c => c.ForwardAsync(Request(input: Filled(Golden.Batch, Golden.Tokens, -3e38f))).ResponseAsync),
        ["forward: one value 3e38 with return_attention"] = new(StatusCode.InvalidArgument, "holds 3E+38 at flat index 17; values beyond ±1.84E+19 (the square root of float32's largest) overflow float32", c => c.ForwardAsync(WithAnswers(WithValue(17, 3e38f), attention: true)).ResponseAsync),
        ["forward: every value 1e18 overflows in the pass"] = new(StatusCode.InvalidArgument, "input.data: the pass overflowed float32", c => c.ForwardAsync(Request(input: Filled(Golden.Batch, Golden.Tokens, 1e18f))).ResponseAsync),
        ["decode: every value +3e38"] = new(StatusCode.InvalidArgument, "input.data holds 3E+38 at flat index 0", c => InSession(c, 16, s => Step(c, s, Filled(1, 2, 3e38f)))),

        // Answers over Headwise__MaxResponseBytes are refused before any head computes.
        ["forward: return_attention over the response limit"] = new(StatusCode.ResourceExhausted, "Headwise__MaxResponseBytes", c => c.ForwardAsync(WithAnswers(Filled(SiloFixture.MaxBatch, SiloFixture.MaxTokens, 0.1f), attention: true)).ResponseAsync),
        ["forward: return_attention names the field"] = new(StatusCode.ResourceExhausted, "return_attention: the answer would hold", c => c.ForwardAsync(WithAnswers(Filled(SiloFixture.MaxBatch, SiloFixture.MaxTokens, 0.1f), attention: true, headOutputs: true)).ResponseAsync),
        ["forward: return_head_outputs over the response limit"] = new(StatusCode.ResourceExhausted, "return_head_outputs: the answer would hold", c => c.ForwardAsync(WideHeadOutputs()).ResponseAsync),

        // Layers and models that do not exist are answered from the gateway's catalog listing.
        ["forward: layer just past the last"] = new(StatusCode.NotFound, "layer 2 not found; model 'bad-input-served' has layers 0..1", c => c.ForwardAsync(Request(layer: 2)).ResponseAsync),
        ["forward: layer int.MaxValue"] = new(StatusCode.NotFound, $"layer {int.MaxValue} not found", c => c.ForwardAsync(Request(layer: int.MaxValue)).ResponseAsync),
        ["forward: layer int.MinValue"] = new(StatusCode.NotFound, $"layer {int.MinValue} not found", c => c.ForwardAsync(Request(layer: int.MinValue)).ResponseAsync),
        ["forward: unknown model"] = new(StatusCode.NotFound, "model 'never-created' not found", c => c.ForwardAsync(Request(model: "never-created")).ResponseAsync),
        ["open: layer out of range"] = new(StatusCode.NotFound, "layer 5 not found", c => c.OpenSessionAsync(new OpenSessionRequest { Model = Served, Layer = 5 }).ResponseAsync),
        ["open: negative layer"] = new(StatusCode.NotFound, "layer -1 not found", c => c.OpenSessionAsync(new OpenSessionRequest { Model = Served, Layer = -1 }).ResponseAsync),
        ["open: unknown model"] = new(StatusCode.NotFound, "model 'never-created' not found", c => c.OpenSessionAsync(new OpenSessionRequest { Model = "never-created" }).ResponseAsync),

        // Multi-megabyte values: refused, and quoted in the message at most EchoedValue.MaxChars characters long.
        ["create: name of 3 MB"] = new(StatusCode.InvalidArgument, $"name has {Huge.Length} characters", c => Create(c, Huge)),
        ["forward: model of 3 MB"] = new(StatusCode.InvalidArgument, $"model has {Huge.Length} characters", c => c.ForwardAsync(Request(model: Huge)).ResponseAsync),
        ["open: model of 3 MB"] = new(StatusCode.InvalidArgument, $"model has {Huge.Length} characters", c => c.OpenSessionAsync(new OpenSessionRequest { Model = Huge }).ResponseAsync),
        ["upload: prefix of 3 MB without {layer}"] = new(StatusCode.InvalidArgument, $"… ({Huge.Length} characters)' has no '{{layer}}'", c => Upload(c, Served, Golden.Bytes, prefix: Huge)),
        ["upload: prefix of 3 MB with {layer}"] = new(StatusCode.InvalidArgument, "characters)' is missing", c => Upload(c, Served, Golden.Bytes, prefix: Huge + "{layer}.")),
        ["upload: prefix with a newline"] = new(StatusCode.InvalidArgument, "tensor 'h.0?.attn.c_attn.weight' is missing", c => Upload(c, Served, Golden.Bytes, prefix: "h.{layer}\n.attn.")),
        ["upload: tensor name of 1 MB in a malformed entry"] = new(StatusCode.InvalidArgument, $"({1 << 20} characters)' has no 'shape'", c => Upload(c, Served, HeaderOnly($"{{\"{new string('t', 1 << 20)}\":{{\"dtype\":\"F32\"}}}}"))),
        ["decode: session id of 3 MB"] = new(StatusCode.InvalidArgument, $"({Huge.Length} characters)", c => c.DecodeAsync(new DecodeRequest { Session = Huge, Input = Filled(1, 1, 0.1f) }).ResponseAsync),
        ["close: session id with a newline"] = new(StatusCode.InvalidArgument, "session is '0123?4567'", c => c.CloseSessionAsync(new CloseSessionRequest { Session = "0123\n4567" }).ResponseAsync),

        // Headers: a 100 MiB header of millions of empty tensors is refused on its first 8 bytes.
        ["upload: 100 MiB header of millions of empty tensors"] = new(StatusCode.ResourceExhausted, "Headwise__MaxUploadHeaderBytes", c => Upload(c, Served, EmptyTensorsHeader.Value)),
        ["upload: header length 2^64 - 1"] = new(StatusCode.InvalidArgument, "18446744073709551615 bytes", c => Upload(c, Served, [.. Enumerable.Repeat((byte)0xFF, 8), .. "{}"u8.ToArray()])),

        // Non-finite weights: refused whole, naming the tensor, in any float dtype.
        ["upload: NaN in c_attn.weight"] = new(StatusCode.InvalidArgument, "tensor 'h.0.attn.c_attn.weight' holds NaN at flat index 5", c => Upload(c, Served, Poisoned("h.0.attn.c_attn.weight", 5, float.NaN))),
        ["upload: +Inf in layer 1's c_proj.weight"] = new(StatusCode.InvalidArgument, "tensor 'h.1.attn.c_proj.weight' holds an infinite value", c => Upload(c, Served, Poisoned("h.1.attn.c_proj.weight", 4095, float.PositiveInfinity))),
        ["upload: -Inf in c_attn.bias"] = new(StatusCode.InvalidArgument, "tensor 'h.0.attn.c_attn.bias' holds an infinite value at flat index 0", c => Upload(c, Served, Poisoned("h.0.attn.c_attn.bias", 0, float.NegativeInfinity))),
        ["upload: NaN in an F16 c_proj.bias"] = new(StatusCode.InvalidArgument, "tensor 'h.1.attn.c_proj.bias' holds NaN", c => Upload(c, Served, Poisoned("h.1.attn.c_proj.bias", 63, float.NaN, Contracts.SafetensorsDType.F16))),
        ["upload: F16 overflow to infinity"] = new(StatusCode.InvalidArgument, "tensor 'h.0.attn.c_proj.weight' holds an infinite value", c => Upload(c, Served, Poisoned("h.0.attn.c_proj.weight", 1, 1e6f, Contracts.SafetensorsDType.F16))),
        ["upload: NaN in a BF16 c_attn.weight"] = new(StatusCode.InvalidArgument, "tensor 'h.1.attn.c_attn.weight' holds NaN", c => Upload(c, Served, Poisoned("h.1.attn.c_attn.weight", 100, float.NaN, Contracts.SafetensorsDType.BF16))),

        // Model size: placing a model costs grains before any weight arrives.
        ["create: 1,024 layers × 1,024 heads, ten times"] = new(StatusCode.ResourceExhausted, "Headwise__MaxHeadsPerModel", c => Repeat(10, () => Create(c, "million-heads", new AttentionSpec { ModelDim = 65536, HeadCount = 1024, LayerCount = 1024 }))),
        ["create: 128 GiB of weights"] = new(StatusCode.ResourceExhausted, $"{2L * 4 * 65536 * 65536 * 4} bytes", c => Create(c, "huge-weights", new AttentionSpec { ModelDim = 65536, HeadCount = 1024, LayerCount = 2 })),
        ["create: weights limit named"] = new(StatusCode.ResourceExhausted, "Headwise__MaxModelWeightBytes", c => Create(c, "huge-weights", new AttentionSpec { ModelDim = 65536, HeadCount = 512, LayerCount = 2 })),

        // Sessions.
        ["open: flood past the per-silo session limit"] = new(StatusCode.ResourceExhausted, "Headwise__Sessions__MaxOpenPerSilo", c => OpenFlood(c)),
        ["open: max_tokens over the limit"] = new(StatusCode.InvalidArgument, "Headwise__Sessions__MaxTokens", c => c.OpenSessionAsync(new OpenSessionRequest { Model = Served, MaxTokens = int.MaxValue }).ResponseAsync),
        ["open: negative max_tokens"] = new(StatusCode.InvalidArgument, "got -1", c => c.OpenSessionAsync(new OpenSessionRequest { Model = Served, MaxTokens = -1 }).ResponseAsync),
        ["decode: rank 2"] = new(StatusCode.InvalidArgument, "input.shape is [1, 64]; it must have 3 dimensions", c => InSession(c, 16, s => Step(c, s, Tensor([1, 64], new float[64])))),
        ["decode: model_dim 32"] = new(StatusCode.InvalidArgument, "input.shape[2] is 32", c => InSession(c, 16, s => Step(c, s, Tensor([1, 1, 32], new float[32])))),
        ["decode: batch 0"] = new(StatusCode.InvalidArgument, "input.shape[0] (batch) is 0", c => InSession(c, 16, s => Step(c, s, Tensor([0, 1, 64], [])))),
        ["decode: batch over the limit"] = new(StatusCode.InvalidArgument, $"input.shape[0] (batch) is {SiloFixture.MaxBatch + 1}", c => InSession(c, 16, s => Step(c, s, Filled(SiloFixture.MaxBatch + 1, 1, 0.1f)))),
        ["decode: batch changes between steps"] = new(StatusCode.InvalidArgument, "started with batch 1", c => InSession(c, 16, async s =>
        {
            await Step(c, s, Filled(1, 1, 0.1f));
            await Step(c, s, Filled(2, 1, 0.1f));
        })),
        ["decode: zero new tokens"] = new(StatusCode.InvalidArgument, "input.shape[1] (new tokens) is 0", c => InSession(c, 16, s => Step(c, s, Tensor([1, 0, 64], [])))),
        ["decode: one step past max_tokens"] = new(StatusCode.ResourceExhausted, "has seen 0 of its max_tokens 4; 5 more do not fit", c => InSession(c, 4, s => Step(c, s, Filled(1, 5, 0.1f)))),
        ["decode: steps adding up past max_tokens"] = new(StatusCode.ResourceExhausted, "has seen 3 of its max_tokens 4; 2 more do not fit", c => InSession(c, 4, async s =>
        {
            await Step(c, s, Filled(1, 3, 0.1f));
            await Step(c, s, Filled(1, 2, 0.1f));
        })),
        ["decode: NaN"] = new(StatusCode.InvalidArgument, "non-finite value at flat index 0", c => InSession(c, 16, s => Step(c, s, Filled(1, 1, float.NaN)))),
        ["decode: data shorter than the shape"] = new(StatusCode.InvalidArgument, "input.data has 252 bytes", c => InSession(c, 16, s => Step(c, s, Tensor([1, 1, 64], new float[63])))),
        ["decode: unknown session"] = new(StatusCode.NotFound, "never opened", c => c.DecodeAsync(new DecodeRequest { Session = Contracts.SessionIds.New(), Input = Filled(1, 1, 0.1f) }).ResponseAsync),
        ["decode: closed session"] = new(StatusCode.NotFound, "it was closed", c => DecodeClosed(c)),
        ["decode: session id in upper case"] = new(StatusCode.InvalidArgument, "32 lowercase hex digits", c => c.DecodeAsync(new DecodeRequest { Session = Contracts.SessionIds.New().ToUpperInvariant(), Input = Filled(1, 1, 0.1f) }).ResponseAsync),
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
            await Create(_client, Wide, new AttentionSpec { ModelDim = WideSpec.ModelDim, HeadCount = WideSpec.HeadCount, HeadDim = WideSpec.HeadDim });
            await Upload(_client, Wide, Contracts.SafetensorsWriter.ToBytes(Contracts.WeightExporter.Export(
                Contracts.SeededWeights.Create(WideSpec, 1), WideSpec, Contracts.WeightLayout.Linear, LinearPrefix)), LinearPrefix, WeightLayout.Linear);
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
    public void The_table_has_at_least_80_rows() => Assert.True(Rows.Count >= 80, $"{Rows.Count} rows");

    [Theory]
    [InlineData(1e4f)]
    [InlineData(1e10f)]
    [InlineData(1e15f)]
    [InlineData(1e18f)]
    [InlineData(1.8e19f)]
    [InlineData(1e20f)]
    [InlineData(3e38f)]
    [InlineData(-3e38f)]
    public async Task Finite_but_huge_inputs_never_come_back_as_NaN_or_infinity(float magnitude)
    {
        // The golden X rescaled so its largest value is the magnitude, with every answer asked for.
        float largest = Golden.Input.Max(Math.Abs);
        var input = Tensor([Golden.Batch, Golden.Tokens, 64], Golden.Input.Select(x => x / largest * magnitude).ToArray());
        try
        {
            var response = await _client.ForwardAsync(WithAnswers(input, attention: true, headOutputs: true));
            foreach (var tensor in new[] { response.Output, response.Attention, response.HeadOutputs })
                Assert.All(Contracts.FloatBytes.AsFloats(tensor.Data.Span).ToArray(), v => Assert.True(float.IsFinite(v), $"{v} came back for |X| = {magnitude}"));
        }
        catch (RpcException e)
        {
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            Assert.Contains("overflow", e.Status.Detail);
        }
        await AssertStillServes();
    }

    [Theory]
    [MemberData(nameof(Names))]
    public async Task Bad_input_gets_its_status_and_the_model_still_serves(string name)
    {
        var row = Rows[name];
        var error = await Assert.ThrowsAsync<RpcException>(() => row.Call(_client));
        Assert.Equal(row.Code, error.StatusCode);
        Assert.Contains(row.Field, error.Status.Detail);
        Assert.True(error.Status.Detail.Length < 1024, $"a {error.Status.Detail.Length}-character message echoes the input");
        Assert.DoesNotContain(new string('p', Contracts.EchoedValue.MaxChars + 1), error.Status.Detail);
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

    /// <summary>A safetensors file of only a header (no tensor data).</summary>
    private static byte[] HeaderOnly(string json)
    {
        byte[] header = System.Text.Encoding.UTF8.GetBytes(json);
        var file = new byte[8 + header.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        return file;
    }

    /// <summary>The golden file with one value of one tensor replaced, the tensor stored in <paramref name="dtype"/>.</summary>
    private static byte[] Poisoned(string name, int index, float value, Contracts.SafetensorsDType dtype = Contracts.SafetensorsDType.F32) =>
        Contracts.SafetensorsWriter.ToBytes(Entries(Golden).Select(e =>
        {
            if (e.Name != name) return e;
            var values = Contracts.FloatBytes.ToFloats(e.Data.Span);
            values[index] = value;
            byte[] data = dtype switch
            {
                Contracts.SafetensorsDType.F16 => values.SelectMany(v => BitConverter.GetBytes((Half)v)).ToArray(),
                Contracts.SafetensorsDType.BF16 => Contracts.Bf16.Encode(values),
                _ => Contracts.FloatBytes.ToBytes(values),
            };
            return new Contracts.SafetensorsEntry(name, dtype, e.Shape, data);
        }));

    private static async Task Repeat(int times, Func<Task> call)
    {
        for (int i = 1; i < times; i++)
        {
            var error = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        }
        await call();
    }

    private static ForwardRequest WithAnswers(Tensor input, bool attention = false, bool headOutputs = false)
    {
        var request = Request(input: input);
        request.ReturnAttention = attention;
        request.ReturnHeadOutputs = headOutputs;
        return request;
    }

    /// <summary>B = 8, T = 256 on the wide model: X and Y are 512 KiB, the per-head outputs 8 MiB.</summary>
    private static ForwardRequest WideHeadOutputs()
    {
        var request = WithAnswers(Filled(SiloFixture.MaxBatch, SiloFixture.MaxTokens, 0.1f), headOutputs: true);
        request.Model = Wide;
        return request;
    }

    private static Tensor Filled(int batch, int tokens, float value) =>
        Tensor([batch, tokens, 64], Enumerable.Repeat(value, batch * tokens * 64).ToArray());

    /// <summary>Runs <paramref name="body"/> in a fresh session of the served model, closed afterwards.</summary>
    private static async Task InSession(Attention.AttentionClient client, int maxTokens, Func<string, Task> body)
    {
        var open = await client.OpenSessionAsync(new OpenSessionRequest { Model = Served, MaxTokens = maxTokens });
        try
        {
            await body(open.Session);
        }
        finally
        {
            await client.CloseSessionAsync(new CloseSessionRequest { Session = open.Session });
        }
    }

    private static Task Step(Attention.AttentionClient client, string session, Tensor input) =>
        client.DecodeAsync(new DecodeRequest { Session = session, Input = input }).ResponseAsync;

    private static async Task DecodeClosed(Attention.AttentionClient client)
    {
        var open = await client.OpenSessionAsync(new OpenSessionRequest { Model = Served, MaxTokens = 4 });
        await client.CloseSessionAsync(new CloseSessionRequest { Session = open.Session });
        await Step(client, open.Session, Filled(1, 1, 0.1f));
    }

    /// <summary>Opens sessions until the silo refuses one, then closes those it opened.</summary>
    private static async Task OpenFlood(Attention.AttentionClient client)
    {
        var opened = new List<string>();
        try
        {
            for (int i = 0; i <= SiloFixture.MaxOpenSessions; i++)
                opened.Add((await client.OpenSessionAsync(new OpenSessionRequest { Model = Served, MaxTokens = 4 })).Session);
            Assert.Fail($"{opened.Count} sessions opened; the silo allows {SiloFixture.MaxOpenSessions}.");
        }
        finally
        {
            foreach (string session in opened) await client.CloseSessionAsync(new CloseSessionRequest { Session = session });
        }
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
