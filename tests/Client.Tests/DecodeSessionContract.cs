using Headwise.Contracts;
using Headwise.TestSupport;

namespace Headwise.Client.Tests;

/// <summary>
/// Decode sessions through every transport: a sequence fed in chunks gives what one causal Forward over the whole
/// sequence gives, for MHA, GQA and sliding-window models, with and without RoPE; and a session that is gone, full
/// or fed the wrong shape fails with a clear, typed error that names it.
/// </summary>
public abstract class DecodeSessionContract(SiloFixture silo) : IAsyncLifetime
{
    protected SiloFixture Silo { get; } = silo;
    protected IAttentionClient Client { get; private set; } = null!;
    protected abstract string Prefix { get; }
    protected abstract IAttentionClient CreateClient();

    public Task InitializeAsync()
    {
        Client = CreateClient();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await Client.DisposeAsync();

    public static TheoryData<string, string, bool> Models => new()
    {
        // golden case (its weights and input), variant, RoPE
        { "linear-mha-bias", "mha", false },
        { "linear-mha-bias", "mha", true },
        { "linear-gqa-window", "gqa", false },
        { "linear-gqa-window", "gqa", true },
        { "linear-gqa-window", "window", false },
        { "linear-gqa-window", "window", true },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Decoding_in_chunks_of_1_3_and_7_equals_one_causal_forward(string caseName, string variant, bool rope)
    {
        var golden = GoldenCase.Load(caseName);
        var spec = golden.Spec with
        {
            Window = variant == "window" ? golden.Window : 0,
            RopeTheta = rope ? 10000f : 0f,
        };
        Assert.True(variant != "window" || spec.Window > 0, "the window case needs a window");
        string model = $"{Prefix}-decode-{variant}-{(rope ? "rope" : "plain")}";
        await Client.CreateModelAsync(model, spec);
        await Client.UploadWeightsAsync(model, new MemoryStream(golden.Bytes), golden.Layout, golden.Prefix);

        int batch = golden.Batch, tokens = golden.Tokens, modelDim = golden.Spec.ModelDim;
        var expected = await Client.ForwardAsync(model, new AttentionInput
        {
            Input = new FloatTensor(golden.Input, batch, tokens, modelDim),
            Causal = true,
        });

        // Anchor the reference: without RoPE the causal Forward is libtorch's; with RoPE it must differ from it.
        string libtorch = variant == "window" ? "expected.0.causal_window" : "expected.0.causal";
        if (!rope)
            Tolerance.AssertClose(golden.Expected(libtorch), expected.Output.Data.Span, $"{model} forward vs libtorch");
        else
            Assert.True(MaxDifference(golden.Expected(libtorch), expected.Output.Data.Span) > 1e-3, $"{model}: RoPE changed nothing");
        if (variant == "window") Assert.True(tokens > spec.Window, $"{tokens} tokens do not pass the window {spec.Window}");

        foreach (int chunk in new[] { 1, 3, 7 })
        {
            var session = await Client.OpenSessionAsync(model, maxTokens: tokens);
            var actual = new float[batch * tokens * modelDim];
            for (int start = 0; start < tokens; start += chunk)
            {
                int count = Math.Min(chunk, tokens - start);
                var step = new float[batch * count * modelDim];
                for (int b = 0; b < batch; b++)
                    golden.Input.AsSpan((b * tokens + start) * modelDim, count * modelDim).CopyTo(step.AsSpan(b * count * modelDim));
                var output = await Client.DecodeAsync(session.Id, new FloatTensor(step, batch, count, modelDim));
                Assert.Equal([batch, count, modelDim], output.Output.Shape);
                Assert.Equal(start + count, output.Position);
                Assert.Equal(0, output.ReprefilledGroups);
                for (int b = 0; b < batch; b++)
                    output.Output.Data.Span.Slice(b * count * modelDim, count * modelDim).CopyTo(actual.AsSpan((b * tokens + start) * modelDim));
            }
            await Client.CloseSessionAsync(session.Id);
            Tolerance.AssertClose(expected.Output.Data.Span, actual, $"{model} in chunks of {chunk}");
        }
    }

    private static double MaxDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    [Fact]
    public async Task Sessions_that_are_gone_full_or_misfed_fail_with_clear_errors()
    {
        var golden = GoldenCase.Load("gpt2-tiny");
        string model = $"{Prefix}-decode-errors";
        await Client.CreateModelAsync(model, golden.Spec);
        int modelDim = golden.Spec.ModelDim;
        FloatTensor Tokens(int batch, int count) => new(new float[batch * count * modelDim], batch, count, modelDim);

        var noWeights = await Assert.ThrowsAsync<HeadwiseException>(() => Client.OpenSessionAsync(model));
        Assert.Equal(ErrorCode.FailedPrecondition, noWeights.Code);
        var unknown = await Assert.ThrowsAsync<HeadwiseException>(() => Client.OpenSessionAsync($"{model}-nope"));
        Assert.Equal(ErrorCode.NotFound, unknown.Code);

        await Client.UploadWeightsAsync(model, new MemoryStream(golden.Bytes), golden.Layout, golden.Prefix);
        var tooLong = await Assert.ThrowsAsync<HeadwiseException>(() => Client.OpenSessionAsync(model, maxTokens: 1 << 30));
        Assert.Equal(ErrorCode.InvalidArgument, tooLong.Code);
        Assert.Contains("max_tokens", tooLong.Message);

        var session = await Client.OpenSessionAsync(model, maxTokens: 4);
        Assert.Equal(4, session.MaxTokens);
        Assert.Matches("^[0-9a-f]{32}$", session.Id);
        Assert.Equal(3, (await Client.DecodeAsync(session.Id, Tokens(2, 3))).Position);

        var otherBatch = await Assert.ThrowsAsync<HeadwiseException>(() => Client.DecodeAsync(session.Id, Tokens(1, 1)));
        Assert.Equal(ErrorCode.InvalidArgument, otherBatch.Code);
        Assert.Contains("batch 2", otherBatch.Message);

        var full = await Assert.ThrowsAsync<HeadwiseException>(() => Client.DecodeAsync(session.Id, Tokens(2, 2)));
        Assert.Equal(ErrorCode.ResourceExhausted, full.Code);
        // Errors name the session by its digest: the id is a bearer token and stays out of the cluster's spans and logs.
        Assert.Contains(SessionIds.GrainKey(session.Id), full.Message);
        Assert.DoesNotContain(session.Id, full.Message);
        Assert.Contains("max_tokens 4", full.Message);
        Assert.Equal(4, (await Client.DecodeAsync(session.Id, Tokens(2, 1))).Position);

        await Client.CloseSessionAsync(session.Id);
        var closed = await Assert.ThrowsAsync<HeadwiseException>(() => Client.DecodeAsync(session.Id, Tokens(2, 1)));
        Assert.Equal(ErrorCode.NotFound, closed.Code);
        Assert.Contains(SessionIds.GrainKey(session.Id), closed.Message);
        var closedTwice = await Assert.ThrowsAsync<HeadwiseException>(() => Client.CloseSessionAsync(session.Id));
        Assert.Equal(ErrorCode.NotFound, closedTwice.Code);

        var badId = await Assert.ThrowsAsync<HeadwiseException>(() => Client.DecodeAsync("not-a-session", Tokens(1, 1)));
        Assert.Equal(ErrorCode.InvalidArgument, badId.Code);
        Assert.Contains("session", badId.Message);
    }

    [Fact]
    public async Task A_step_with_an_expected_position_is_applied_once_and_its_retry_is_answered_again()
    {
        var golden = GoldenCase.Load("linear-gqa-window");
        string model = $"{Prefix}-decode-once";
        await Client.CreateModelAsync(model, golden.Spec);
        await Client.UploadWeightsAsync(model, new MemoryStream(golden.Bytes), golden.Layout, golden.Prefix);
        int modelDim = golden.Spec.ModelDim;
        FloatTensor Rows(int start, int count) => new(golden.Input.AsSpan(start * modelDim, count * modelDim).ToArray(), 1, count, modelDim);
        var expected = await Client.ForwardAsync(model, new AttentionInput { Input = Rows(0, 5), Causal = true });

        var session = await Client.OpenSessionAsync(model, maxTokens: 8);
        var first = await Client.DecodeAsync(session.Id, Rows(0, 2), expectedPosition: 0);
        Assert.False(first.Replayed);
        Assert.Equal(2, first.Position);

        // The reply was "lost": the same step again is answered from the session's record, not applied a second time.
        var retry = await Client.DecodeAsync(session.Id, Rows(0, 2), expectedPosition: 0);
        Assert.True(retry.Replayed);
        Assert.Equal(2, retry.Position);
        Assert.Equal(first.Output.Data.ToArray(), retry.Output.Data.ToArray());

        // Other rows at a position already passed, or a position ahead: refused, naming both positions.
        var stale = await Assert.ThrowsAsync<HeadwiseException>(() => Client.DecodeAsync(session.Id, Rows(2, 2), expectedPosition: 0));
        Assert.Equal(ErrorCode.FailedPrecondition, stale.Code);
        // The message names the session by its digest: the id is a bearer token and stays out of errors and logs.
        Assert.Contains(SessionIds.GrainKey(session.Id), stale.Message);
        Assert.DoesNotContain(session.Id, stale.Message);
        Assert.Contains("at position 2, not at the expected position 0", stale.Message);
        var ahead = await Assert.ThrowsAsync<HeadwiseException>(() => Client.DecodeAsync(session.Id, Rows(2, 2), expectedPosition: 3));
        Assert.Equal(ErrorCode.FailedPrecondition, ahead.Code);
        Assert.Contains("at position 2, not at the expected position 3", ahead.Message);

        // A step sent without an expected position is applied; its retry with one is refused (no answer was kept).
        var second = await Client.DecodeAsync(session.Id, Rows(2, 2));
        Assert.Equal(4, second.Position);
        var unkept = await Assert.ThrowsAsync<HeadwiseException>(() => Client.DecodeAsync(session.Id, Rows(2, 2), expectedPosition: 2));
        Assert.Equal(ErrorCode.FailedPrecondition, unkept.Code);
        Assert.Contains("already applied", unkept.Message);

        var third = await Client.DecodeAsync(session.Id, Rows(4, 1), expectedPosition: 4);
        Assert.Equal(5, third.Position);
        // The refused and replayed calls changed nothing: the five tokens are those of one causal Forward.
        var actual = first.Output.Data.ToArray().Concat(second.Output.Data.ToArray()).Concat(third.Output.Data.ToArray()).ToArray();
        Tolerance.AssertClose(expected.Output.Data.Span, actual, "decode with retried and refused steps");
        await Client.CloseSessionAsync(session.Id);
    }

    [Fact]
    public async Task An_unknown_well_formed_session_id_is_not_found()
    {
        string id = SessionIds.New();
        var unknown = await Assert.ThrowsAsync<HeadwiseException>(() =>
            Client.DecodeAsync(id, new FloatTensor(new float[8], 1, 1, 8), expectedPosition: 0));
        Assert.Equal(ErrorCode.NotFound, unknown.Code);
        Assert.Contains(SessionIds.GrainKey(id), unknown.Message);
        Assert.DoesNotContain(id, unknown.Message);
        var close = await Assert.ThrowsAsync<HeadwiseException>(() => Client.CloseSessionAsync(id));
        Assert.Equal(ErrorCode.NotFound, close.Code);
    }
}

[Collection(SiloCollection.Name)]
public sealed class GrpcDecodeSessionTests(SiloFixture silo) : DecodeSessionContract(silo)
{
    protected override string Prefix => "grpc";
    protected override IAttentionClient CreateClient() => Silo.CreateGrpcClient();
}

[Collection(SiloCollection.Name)]
public sealed class OrleansDecodeSessionTests(SiloFixture silo) : DecodeSessionContract(silo)
{
    protected override string Prefix => "orleans";
    protected override IAttentionClient CreateClient() => Silo.CreateOrleansClient();
}
