using System.Runtime.InteropServices;
using Headwise.TestSupport;

namespace Headwise.Client.Tests;

/// <summary>
/// ForwardAsync with an output buffer writes Y into the caller's memory (the gRPC SDK parses it there, inline or from
/// shared memory; the Orleans client copies it there, as does the interface's default body for an implementation that
/// has no overload of its own) and answers exactly what the ordinary ForwardAsync answers, bit for bit, leaving the rest
/// of the buffer untouched; one buffer serves pass after pass.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class ForwardIntoCallerBufferTests(SiloFixture silo) : IAsyncLifetime
{
    private const string Model = "caller-output";
    private const float Untouched = -12345.5f;
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-small-shape");

    public async Task InitializeAsync()
    {
        await using var client = silo.CreateGrpcClient();
        if ((await client.ListModelsAsync()).Any(m => m.Name == Model)) return;
        await client.CreateModelAsync(Model, Golden.Spec);
        await client.UploadWeightsAsync(Model, new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public static TheoryData<string> Clients => ["gRPC inline", "gRPC shared memory", "Orleans", "an implementation without the overload"];

    private IAttentionClient Client(string name) => name switch
    {
        "gRPC inline" => silo.CreateGrpcClient(),
        "gRPC shared memory" => new GrpcAttentionClient(silo.GrpcAddress, new GrpcAttentionClientOptions { SharedMemory = SharedMemoryMode.On }),
        "Orleans" => silo.CreateOrleansClient(),
        _ => new PassThroughClient(silo.CreateGrpcClient()),
    };

    private static AttentionInput RandomInput(int seed, int batch, int tokens)
    {
        var random = new Random(seed);
        var x = new float[batch * tokens * Golden.Spec.ModelDim];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 4 - 2);
        return new AttentionInput { Input = new FloatTensor(x, batch, tokens, Golden.Spec.ModelDim), Causal = seed % 2 == 0 };
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task One_buffer_takes_Y_pass_after_pass_and_each_answer_equals_the_ordinary_one(string name)
    {
        await using var client = Client(name);
        // Inputs of 64 KB and more (the gateway's pooled parse) and one below it, of two shapes, into one buffer with room to spare.
        var inputs = new[] { RandomInput(1, 1, 40), RandomInput(2, 2, 23), RandomInput(3, 1, 5) };
        var buffer = new float[2 * 40 * Golden.Spec.ModelDim + 100];
        foreach (var input in inputs)
        {
            var expected = await client.ForwardAsync(Model, input);
            Array.Fill(buffer, Untouched);
            var answer = await client.ForwardAsync(Model, input, buffer);

            int count = input.Input.Data.Length;
            Assert.Equal(expected.Output.Shape, answer.Output.Shape);
            Assert.True(MemoryMarshal.TryGetArray(answer.Output.Data, out var view) && view.Array == buffer && view.Offset == 0 && view.Count == count,
                $"{name}: the answer's Y is not a view of the caller's buffer");
            Assert.True(expected.Output.Data.Span.SequenceEqual(buffer.AsSpan(0, count)), $"{name}: Y in the buffer differs from the ordinary answer");
            Assert.All(buffer[count..], value => Assert.Equal(Untouched, value));
            Assert.Equal(expected.Heads.Count, answer.Heads.Count);
            Assert.False(string.IsNullOrEmpty(answer.TraceId));
        }
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task A_buffer_smaller_than_Y_is_refused_before_any_call(string name)
    {
        await using var client = Client(name);
        var input = RandomInput(4, 1, 8);
        var error = await Assert.ThrowsAsync<ArgumentException>(() => client.ForwardAsync(Model, input, new float[input.Input.Data.Length - 1]));
        Assert.Equal("output", error.ParamName);
        Assert.Contains($"needs {input.Input.Data.Length}", error.Message);
    }
}
