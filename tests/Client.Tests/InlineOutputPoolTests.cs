using Headwise.Grains.Forward;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace Headwise.Client.Tests;

/// <summary>
/// An inline forward's Y goes back to the silo's tensor pool once its response is written (the response wraps it
/// without a copy), and a Y written into a recycled array is still each caller's own: concurrent passes of one shape,
/// each reusing the arrays the passes before it returned, answer bit for bit what they answered one at a time.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class InlineOutputPoolTests(SiloFixture silo) : IAsyncLifetime
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
    public async Task Each_inline_answer_returns_its_output_array_to_the_pool()
    {
        var pool = silo.SiloServices.GetRequiredService<TensorBuffers>();
        // 61 rows × 768 × 4 bytes: a length no other test of this silo uses, above the pool's minimum.
        const int tokens = 61;
        int outputBytes = tokens * Golden.Spec.ModelDim * sizeof(float);
        Assert.True(outputBytes >= TensorBuffers.MinimumBytes);
        long before = pool.KeptBytes;
        for (int pass = 0; pass < 3; pass++)
        {
            await _client.ForwardAsync(Model, RandomInput(pass, tokens));
            // The pass rents its Y from the pool (fresh the first time) and the response's completion gives it back; that
            // runs just after the client has the answer, so wait for it a moment.
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (pool.KeptBytes != before + outputBytes && waited.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(10);
            Assert.True(pool.KeptBytes == before + outputBytes,
                $"pass {pass}: the pool keeps {pool.KeptBytes} bytes; with this pass's Y ({outputBytes} bytes) back it would keep {before + outputBytes}.");
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
}
