using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Headwise.Grains.Forward;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Proto = Headwise.V1;

using static Headwise.TestSupport.ProtoWire;

namespace Headwise.Client.Tests;

/// <summary>
/// An inline forward's X is parsed into an array of the silo's tensor pool and its Y is written into one; both go back
/// once the pass has answered (Y once its response is written: the response wraps it without a copy). A recycled array
/// is still each caller's own: concurrent passes of one shape, each reusing arrays the passes before it returned, answer
/// bit for bit what they answered one at a time; and the gateway's own parse of X answers what protobuf's would for every
/// valid encoding and dtype.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class InlineTensorPoolTests(SiloFixture silo) : IAsyncLifetime
{
    private const string Model = "inline-pool";
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-small-shape");
    private IAttentionClient _client = null!;

    public async Task InitializeAsync()
    {
        _client = silo.CreateGrpcClient();
        if ((await _client.ListModelsAsync()).Any(m => m.Name == Model)) return;
        await _client.CreateModelAsync(Model, Golden.Spec);
        await _client.UploadWeightsAsync(Model, new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
    }

    public async Task DisposeAsync() => await _client.DisposeAsync();

    private static AttentionInput RandomInput(int seed, int tokens)
    {
        var random = new Random(seed);
        var x = new float[tokens * Golden.Spec.ModelDim];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 4 - 2);
        return new AttentionInput { Input = new FloatTensor(x, 1, tokens, Golden.Spec.ModelDim), Causal = seed % 2 == 0 };
    }

    [Fact]
    public async Task Each_inline_answer_returns_its_input_and_output_arrays_to_the_pool()
    {
        var pool = silo.SiloServices.GetRequiredService<TensorBuffers>();
        // 61 rows × 768 × 4 bytes: a length no other test of this silo uses, above the pool's minimum. X and Y have it both.
        const int tokens = 61;
        int tensorBytes = tokens * Golden.Spec.ModelDim * sizeof(float);
        Assert.True(tensorBytes >= TensorBuffers.MinimumBytes);
        long before = pool.KeptBytes;
        for (int pass = 0; pass < 4; pass++)
        {
            await _client.ForwardAsync(Model, RandomInput(pass, tokens));
            // The first pass rents X and Y fresh and gives both back; every later one rents the two it finds there and
            // gives them back again. Were X parsed into a new array, the pool would grow by one array a pass; were it not
            // returned, it would hold one. Y comes back just after the client has the answer, so wait for it a moment.
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (pool.KeptBytes != before + 2 * tensorBytes && waited.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(10);
            Assert.True(pool.KeptBytes == before + 2 * tensorBytes,
                $"pass {pass}: the pool keeps {pool.KeptBytes} bytes; with this pass's X and Y ({tensorBytes} bytes each) back it would keep {before + 2 * tensorBytes}.");
        }
    }

    [Fact]
    public async Task Concurrent_inline_forwards_answered_from_recycled_arrays_each_get_their_own_answer()
    {
        // One shape, so every pass's Y has the same length and reuses an array an earlier pass returned.
        var inputs = Enumerable.Range(0, 8).Select(i => RandomInput(200 + i, tokens: 64)).ToArray();
        var expected = new AttentionOutput[inputs.Length];
        for (int i = 0; i < inputs.Length; i++) expected[i] = await _client.ForwardAsync(Model, inputs[i]);

        for (int round = 0; round < 4; round++)
        {
            var answers = await Task.WhenAll(inputs.Select(input => _client.ForwardAsync(Model, input)));
            for (int i = 0; i < inputs.Length; i++)
                Assert.True(expected[i].Output.Data.Span.SequenceEqual(answers[i].Output.Data.Span), $"round {round}, pass {i}: Y is not its own");
        }
    }

    [Fact]
    public async Task Valid_encodings_protobuf_reads_alike_give_the_same_answer()
    {
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        var raw = new Method<byte[], Proto.ForwardResponse>(MethodType.Unary, "headwise.v1.Attention", "Forward",
            Marshallers.Create((byte[] b) => b, b => b), Marshallers.Create((Proto.ForwardResponse r) => r.ToByteArray(), Proto.ForwardResponse.Parser.ParseFrom));
        var input = RandomInput(300, tokens: 40);
        var x = Contracts.FloatBytes.ToBytes(input.Input.Data.ToArray());
        var tensor = new Proto.Tensor { Dtype = Proto.DType.F32, Data = ByteString.CopyFrom(x), Shape = { 1, 40, Golden.Spec.ModelDim } };
        var plain = new Proto.ForwardRequest { Model = Model, Input = tensor, Causal = true };
        var expected = (await channel.CreateCallInvoker().AsyncUnaryCall(raw, null, new CallOptions(), plain.ToByteArray())).Output.Data;

        var shapeOnly = new Proto.Tensor { Dtype = Proto.DType.F32, Shape = { 1, 40, Golden.Spec.ModelDim } };
        var encodings = new Dictionary<string, byte[]>
        {
            // Fields in reverse order, with fields this proto does not know in both messages: the gateway finds X itself.
            ["reordered, unknown fields"] = Concat(Field(3, Concat(Field(3, x), Unknown(), shapeOnly.ToByteArray())), Unknown(),
                new Proto.ForwardRequest { Model = Model, Causal = true }.ToByteArray()),
            // Input given in two parts, which protobuf merges: the gateway leaves it to the generated parser.
            ["input in two parts"] = Concat(new Proto.ForwardRequest { Model = Model, Input = shapeOnly }.ToByteArray(),
                new Proto.ForwardRequest { Causal = true, Input = new Proto.Tensor { Data = ByteString.CopyFrom(x) } }.ToByteArray()),
            // A bytes field given twice: the last one counts.
            ["data twice, the last real"] = Concat(new Proto.ForwardRequest { Model = Model, Causal = true }.ToByteArray(),
                Field(3, Concat(shapeOnly.ToByteArray(), Field(3, new byte[x.Length]), Field(3, x)))),
        };
        foreach (var (name, encoding) in encodings)
        {
            var answer = await channel.CreateCallInvoker().AsyncUnaryCall(raw, null, new CallOptions(), encoding);
            Assert.True(expected.Span.SequenceEqual(answer.Output.Data.Span), $"{name}: Y differs from the plain encoding's");
        }
    }

    [Fact]
    public async Task F16_and_BF16_inputs_answer_as_the_F32_values_they_widen_to()
    {
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        var client = new Proto.Attention.AttentionClient(channel);
        var random = new Random(301);
        const int tokens = 48;
        var values = Enumerable.Range(0, tokens * Golden.Spec.ModelDim).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        var halves = values.Select(v => (Half)v).ToArray();
        var bf16 = Contracts.Bf16.Encode(values);
        var bf16Widened = new float[values.Length];
        Contracts.Bf16.Decode(bf16, bf16Widened);
        var cases = new (string Name, Proto.DType DType, byte[] Data, float[] Widened)[]
        {
            ("F16", Proto.DType.F16, System.Runtime.InteropServices.MemoryMarshal.AsBytes(halves.AsSpan()).ToArray(), halves.Select(h => (float)h).ToArray()),
            ("BF16", Proto.DType.Bf16, bf16, bf16Widened),
        };
        foreach (var (name, dtype, data, widened) in cases)
        {
            var expected = await client.ForwardAsync(Request(Proto.DType.F32, Contracts.FloatBytes.ToBytes(widened), tokens));
            // Concurrent and repeated, so narrow inputs and the F32 arrays they widen into are recycled under one another.
            for (int round = 0; round < 3; round++)
            {
                var answers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => client.ForwardAsync(Request(dtype, data, tokens)).ResponseAsync));
                foreach (var answer in answers)
                    Assert.True(expected.Output.Data.Span.SequenceEqual(answer.Output.Data.Span), $"{name}, round {round}: Y differs from the widened F32 input's");
            }
        }
    }

    private static Proto.ForwardRequest Request(Proto.DType dtype, byte[] data, int tokens) => new()
    {
        Model = Model,
        Input = new Proto.Tensor { Dtype = dtype, Data = ByteString.CopyFrom(data), Shape = { 1, tokens, Golden.Spec.ModelDim } },
    };
}
