using Headwise.Contracts;
using Headwise.TestSupport;

namespace Headwise.Client.Tests;

/// <summary>
/// Decode steps over a stream, through every transport: the outputs are bit for bit those of the same steps sent as
/// unary Decodes to a second session, in order, and within the golden bounds of libtorch's float64 causal attention; a
/// pipelined stream keeps its order; a failing step ends the stream with its own status and leaves the session usable.
/// </summary>
public abstract class DecodeStreamContract(SiloFixture silo) : IAsyncLifetime
{
    private static readonly GoldenCase Golden = GoldenCase.Load("linear-mha-bias");

    protected SiloFixture Silo { get; } = silo;
    protected IAttentionClient Client { get; private set; } = null!;
    protected abstract string Prefix { get; }
    protected abstract IAttentionClient CreateClient();
    /// <summary>Whether DecodeStreamAsync sends an input before the previous answer is back (gRPC: yes; Orleans: no).</summary>
    protected abstract bool Pipelined { get; }

    private string Model => $"{Prefix}-stream";
    private int ModelDim => Golden.Spec.ModelDim;

    public async Task InitializeAsync()
    {
        Client = CreateClient();
        if ((await Client.ListModelsAsync()).Any(m => m.Name == Model)) return;
        await Client.CreateModelAsync(Model, Golden.Spec);
        await Client.UploadWeightsAsync(Model, new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
    }

    public async Task DisposeAsync() => await Client.DisposeAsync();

    /// <summary>Token <paramref name="token"/> of every sequence of the golden input: [batch, 1, D].</summary>
    private FloatTensor GoldenToken(int token)
    {
        int batch = Golden.Batch, tokens = Golden.Tokens;
        var step = new float[batch * ModelDim];
        for (int b = 0; b < batch; b++)
            Golden.Input.AsSpan((b * tokens + token) * ModelDim, ModelDim).CopyTo(step.AsSpan(b * ModelDim));
        return new FloatTensor(step, batch, 1, ModelDim);
    }

    private FloatTensor RandomToken(Random random)
    {
        var step = new float[ModelDim];
        for (int i = 0; i < step.Length; i++) step[i] = (float)(random.NextDouble() * 2 - 1);
        return new FloatTensor(step, 1, 1, ModelDim);
    }

    [Fact]
    public async Task Single_token_steps_equal_unary_decode_bit_for_bit_and_libtorch_within_bounds()
    {
        int batch = Golden.Batch, tokens = Golden.Tokens;
        var streamed = await Client.OpenSessionAsync(Model, maxTokens: tokens);
        var unary = await Client.OpenSessionAsync(Model, maxTokens: tokens);
        var actual = new float[batch * tokens * ModelDim];
        await using (var stream = await Client.OpenDecodeStreamAsync(streamed.Id))
        {
            await stream.PingAsync();
            for (int t = 0; t < tokens; t++)
            {
                var output = await stream.StepAsync(GoldenToken(t));
                // Pings between steps are answered in order and change nothing.
                if (t % 3 == 0) await stream.PingAsync();
                var reference = await Client.DecodeAsync(unary.Id, GoldenToken(t));
                Assert.Equal(t + 1, output.Position);
                Assert.Equal([batch, 1, ModelDim], output.Output.Shape);
                Assert.False(output.Replayed);
                Assert.Equal(reference.Output.Data.ToArray(), output.Output.Data.ToArray());
                for (int b = 0; b < batch; b++)
                    output.Output.Data.Span.Slice(b * ModelDim, ModelDim).CopyTo(actual.AsSpan((b * tokens + t) * ModelDim));
            }
        }
        Tolerance.AssertClose(Golden.Expected("expected.0.causal"), actual, $"{Model}: {tokens} streamed steps vs libtorch float64");
        await Client.CloseSessionAsync(streamed.Id);
        await Client.CloseSessionAsync(unary.Id);
    }

    [Fact]
    public async Task Many_steps_in_flight_come_back_in_order_and_equal_unary_decode()
    {
        const int steps = 64;
        var random = new Random(14);
        var inputs = Enumerable.Range(0, steps).Select(_ => RandomToken(random)).ToArray();
        var streamed = await Client.OpenSessionAsync(Model, maxTokens: steps);
        var unary = await Client.OpenSessionAsync(Model, maxTokens: steps);

        int pulled = 0;
        async IAsyncEnumerable<FloatTensor> Inputs()
        {
            foreach (var input in inputs)
            {
                pulled++;
                yield return input;
                await Task.Yield();
            }
        }
        var outputs = new List<DecodeOutput>();
        int pulledAtFirstAnswer = 0;
        await foreach (var output in Client.DecodeStreamAsync(streamed.Id, Inputs()))
        {
            if (outputs.Count == 0) pulledAtFirstAnswer = Volatile.Read(ref pulled);
            outputs.Add(output);
        }

        Assert.Equal(steps, outputs.Count);
        if (Pipelined) Assert.True(pulledAtFirstAnswer > 1, $"only {pulledAtFirstAnswer} input(s) were sent before the first answer came back");
        for (int i = 0; i < steps; i++)
        {
            var reference = await Client.DecodeAsync(unary.Id, inputs[i]);
            Assert.Equal(i + 1, outputs[i].Position);
            Assert.Equal(reference.Output.Data.ToArray(), outputs[i].Output.Data.ToArray());
        }
        await Client.CloseSessionAsync(streamed.Id);
        await Client.CloseSessionAsync(unary.Id);
    }

    [Fact]
    public async Task An_unknown_session_is_not_found()
    {
        string id = SessionIds.New();
        var unknown = await Assert.ThrowsAsync<HeadwiseException>(async () =>
        {
            await using var stream = await Client.OpenDecodeStreamAsync(id);
            await stream.StepAsync(RandomToken(new Random(1)));
        });
        Assert.Equal(ErrorCode.NotFound, unknown.Code);
        Assert.Contains(SessionIds.GrainKey(id), unknown.Message);
        Assert.DoesNotContain(id, unknown.Message);

        var pipelined = await Assert.ThrowsAsync<HeadwiseException>(async () =>
        {
            await foreach (var _ in Client.DecodeStreamAsync(id, new[] { RandomToken(new Random(1)) }.ToAsyncEnumerable()))
            {
            }
        });
        Assert.Equal(ErrorCode.NotFound, pipelined.Code);

        var malformed = await Assert.ThrowsAsync<HeadwiseException>(() => Client.OpenDecodeStreamAsync("not-a-session"));
        Assert.Equal(ErrorCode.InvalidArgument, malformed.Code);
        Assert.Contains("session", malformed.Message);
    }

    [Fact]
    public async Task A_misshapen_step_ends_the_stream_with_INVALID_ARGUMENT_and_the_session_decodes_on_at_its_position()
    {
        var random = new Random(2);
        var session = await Client.OpenSessionAsync(Model, maxTokens: 8);
        var stream = await Client.OpenDecodeStreamAsync(session.Id);
        Assert.Equal(1, (await stream.StepAsync(RandomToken(random))).Position);
        Assert.Equal(2, (await stream.StepAsync(RandomToken(random))).Position);

        var wrongDim = new FloatTensor(new float[ModelDim + 1], 1, 1, ModelDim + 1);
        var bad = await Assert.ThrowsAsync<HeadwiseException>(() => stream.StepAsync(wrongDim));
        Assert.Equal(ErrorCode.InvalidArgument, bad.Code);
        Assert.Contains($"input.shape[2] is {ModelDim + 1}; model '{Model}' has model_dim {ModelDim}", bad.Message);
        // The stream has ended; the next step says so with the same code instead of hanging.
        var after = await Assert.ThrowsAsync<HeadwiseException>(() => stream.StepAsync(RandomToken(random)));
        Assert.Equal(ErrorCode.InvalidArgument, after.Code);
        Assert.Contains("ended", after.Message);
        await stream.DisposeAsync();

        // Nothing of the bad step was applied: the session goes on at position 2, by unary Decode and by a new stream.
        Assert.Equal(3, (await Client.DecodeAsync(session.Id, RandomToken(random), expectedPosition: 2)).Position);
        await using (var again = await Client.OpenDecodeStreamAsync(session.Id))
            Assert.Equal(4, (await again.StepAsync(RandomToken(random), expectedPosition: 3)).Position);
        await Client.CloseSessionAsync(session.Id);
    }

    [Fact]
    public async Task A_wrong_expected_position_is_FAILED_PRECONDITION_and_a_retried_step_is_replayed()
    {
        var random = new Random(3);
        var session = await Client.OpenSessionAsync(Model, maxTokens: 8);
        var first = RandomToken(random);
        DecodeOutput applied;
        await using (var stream = await Client.OpenDecodeStreamAsync(session.Id))
        {
            applied = await stream.StepAsync(first, expectedPosition: 0);
            Assert.Equal(1, applied.Position);
            var replayed = await stream.StepAsync(first, expectedPosition: 0);
            Assert.True(replayed.Replayed);
            Assert.Equal(applied.Output.Data.ToArray(), replayed.Output.Data.ToArray());

            var wrong = await Assert.ThrowsAsync<HeadwiseException>(() => stream.StepAsync(RandomToken(random), expectedPosition: 5));
            Assert.Equal(ErrorCode.FailedPrecondition, wrong.Code);
            Assert.Contains("at position 1, not at the expected position 5", wrong.Message);
            await Assert.ThrowsAsync<HeadwiseException>(() => stream.PingAsync());
        }
        Assert.Equal(2, (await Client.DecodeAsync(session.Id, RandomToken(random), expectedPosition: 1)).Position);
        await Client.CloseSessionAsync(session.Id);
    }

    [Fact]
    public async Task A_cancelled_step_throws_OperationCanceledException_and_one_step_runs_at_a_time()
    {
        var random = new Random(4);
        var session = await Client.OpenSessionAsync(Model, maxTokens: 8);
        await using (var stream = await Client.OpenDecodeStreamAsync(session.Id))
        {
            var running = stream.StepAsync(RandomToken(random));
            await Assert.ThrowsAsync<InvalidOperationException>(() => stream.StepAsync(RandomToken(random)));
            Assert.Equal(1, (await running).Position);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.StepAsync(RandomToken(random), new CancellationToken(canceled: true)));
        }
        // The cancelled step was never sent, or ran to its end: either way the session answers at a position it reports.
        var next = await Client.DecodeAsync(session.Id, RandomToken(random));
        Assert.InRange(next.Position, 2, 3);
        await Client.CloseSessionAsync(session.Id);
    }
}

[Collection(SiloCollection.Name)]
public sealed class GrpcDecodeStreamTests(SiloFixture silo) : DecodeStreamContract(silo)
{
    protected override string Prefix => "grpc";
    protected override bool Pipelined => true;
    protected override IAttentionClient CreateClient() => Silo.CreateGrpcClient();

    [Fact]
    public async Task More_open_streams_than_one_HTTP2_connection_carries_all_answer()
    {
        // Kestrel allows 100 streams per connection; the SDK's channel opens more connections rather than queueing the
        // 101st stream behind streams that stay open for their session's life.
        const int streams = 120;
        var golden = GoldenCase.Load("gpt2-tiny");
        await Client.CreateModelAsync("grpc-many-streams", golden.Spec);
        await Client.UploadWeightsAsync("grpc-many-streams", new MemoryStream(golden.Bytes), golden.Layout, golden.Prefix);
        var sessions = await Task.WhenAll(Enumerable.Range(0, streams).Select(_ => Client.OpenSessionAsync("grpc-many-streams", maxTokens: 4)));
        var open = new List<DecodeStream>();
        try
        {
            foreach (var session in sessions)
                open.Add(await Client.OpenDecodeStreamAsync(session.Id).WaitAsync(TimeSpan.FromSeconds(30)));
            int modelDim = golden.Spec.ModelDim;
            var positions = await Task.WhenAll(open.Select(async stream =>
                (await stream.StepAsync(new FloatTensor(new float[modelDim], 1, 1, modelDim))).Position));
            Assert.All(positions, position => Assert.Equal(1, position));
        }
        finally
        {
            foreach (var stream in open) await stream.DisposeAsync();
        }
        await Task.WhenAll(sessions.Select(session => Client.CloseSessionAsync(session.Id)));
    }
}

[Collection(SiloCollection.Name)]
public sealed class OrleansDecodeStreamTests(SiloFixture silo) : DecodeStreamContract(silo)
{
    protected override string Prefix => "orleans";
    protected override bool Pipelined => false;
    protected override IAttentionClient CreateClient() => Silo.CreateOrleansClient();
}
