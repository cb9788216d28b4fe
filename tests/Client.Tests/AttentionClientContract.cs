using Headwise.Contracts;
using Headwise.TestSupport;

namespace Headwise.Client.Tests;

/// <summary>
/// What every <see cref="IAttentionClient"/> transport must do, checked against a real silo. Each transport
/// derives from this class once; model names carry the transport's prefix so the suites never collide.
/// </summary>
public abstract class AttentionClientContract(SiloFixture silo) : IAsyncLifetime
{
    protected SiloFixture Silo { get; } = silo;
    protected IAttentionClient Client { get; private set; } = null!;
    protected abstract string Prefix { get; }
    protected abstract IAttentionClient CreateClient();

    public static TheoryData<string> GoldenNames => new(GoldenCase.Names);

    public Task InitializeAsync()
    {
        Client = CreateClient();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await Client.DisposeAsync();

    [Theory]
    [MemberData(nameof(GoldenNames))]
    public async Task Golden_case_matches_libtorch_for_every_layer_and_mask(string caseName)
    {
        var golden = GoldenCase.Load(caseName);
        string model = $"{Prefix}-{caseName}";
        await Client.CreateModelAsync(model, golden.Spec);
        var uploaded = await Client.UploadWeightsAsync(model, new MemoryStream(golden.Bytes), golden.Layout, golden.Prefix);
        Assert.True(uploaded.Ready);

        string? windowModel = null;
        if (golden.Window > 0)
        {
            windowModel = model + "-window";
            await Client.CreateModelAsync(windowModel, golden.Spec with { Window = golden.Window });
            await Client.UploadWeightsAsync(windowModel, new MemoryStream(golden.Bytes), golden.Layout, golden.Prefix);
        }

        int checkedTensors = 0;
        foreach (var expectation in golden.Expectations())
        {
            var output = await Client.ForwardAsync(expectation.Windowed ? windowModel! : model, new AttentionInput
            {
                Input = new FloatTensor(golden.Input, golden.Batch, golden.Tokens, golden.Spec.ModelDim),
                Layer = expectation.Layer,
                Causal = expectation.Causal,
                Lengths = expectation.Padded ? golden.Lengths : null,
            });
            Assert.Equal([golden.Batch, golden.Tokens, golden.Spec.ModelDim], output.Output.Shape);
            Tolerance.AssertClose(golden.Expected(expectation.Tensor), output.Output.Data.Span, $"{caseName} {expectation.Tensor}");
            checkedTensors++;
        }
        Assert.Equal(golden.File.Tensors.Keys.Count(k => k.StartsWith("expected.", StringComparison.Ordinal)), checkedTensors);

        var withInternals = await Client.ForwardAsync(model, new AttentionInput
        {
            Input = new FloatTensor(golden.Input, golden.Batch, golden.Tokens, golden.Spec.ModelDim),
            Causal = true,
            ReturnAttention = true,
            ReturnHeadOutputs = true,
        });
        var resolved = golden.Spec.Resolve();
        Assert.Equal([golden.Batch, resolved.HeadCount, golden.Tokens, golden.Tokens], withInternals.Attention!.Shape);
        Assert.Equal([golden.Batch, resolved.HeadCount, golden.Tokens, resolved.HeadDim], withInternals.HeadOutputs!.Shape);
        Tolerance.AssertClose(golden.Expected("attention.0.causal"), withInternals.Attention.Data.Span, $"{caseName} attention.0.causal");
        Tolerance.AssertClose(golden.Expected("head_outputs.0.causal"), withInternals.HeadOutputs.Data.Span, $"{caseName} head_outputs.0.causal");
        Tolerance.AssertClose(golden.Expected("expected.0.causal"), withInternals.Output.Data.Span, $"{caseName} expected.0.causal with internals");
    }

    [Fact]
    public async Task Forward_reports_every_head_group_and_a_trace_id()
    {
        var golden = GoldenCase.Load("linear-gqa-window");
        string model = $"{Prefix}-reports";
        await Client.CreateModelAsync(model, golden.Spec);
        await Client.UploadWeightsAsync(model, new MemoryStream(golden.Bytes), golden.Layout, golden.Prefix);

        var output = await Client.ForwardAsync(model, new AttentionInput
        {
            Input = new FloatTensor(golden.Input, golden.Batch, golden.Tokens, golden.Spec.ModelDim),
        });

        // GQA 8 query heads over 2 key/value heads: two head grains, each computing four consecutive heads.
        Assert.Equal([0, 1], output.Heads.Select(h => h.Group).Order());
        Assert.Equal([0, 1, 2, 3], output.Heads.Single(h => h.Group == 0).Heads);
        Assert.Equal([4, 5, 6, 7], output.Heads.Single(h => h.Group == 1).Heads);
        Assert.All(output.Heads, h =>
        {
            Assert.False(string.IsNullOrEmpty(h.Silo));
            Assert.Equal("simd", h.Kernel);
            Assert.True(h.ComputeMs > 0 && h.CallMs >= h.ComputeMs, $"compute {h.ComputeMs} ms, call {h.CallMs} ms");
        });
        Assert.Matches("^[0-9a-f]{32}$", output.TraceId);
    }

    [Fact]
    public async Task Models_are_created_described_listed_and_deleted()
    {
        string model = $"{Prefix}-lifecycle";
        var created = await Client.CreateModelAsync(model, new AttentionSpec { ModelDim = 48, HeadCount = 6, KvHeadCount = 3, LayerCount = 2 });
        Assert.False(created.Ready);
        Assert.Equal(8, created.Spec.HeadDim);
        Assert.Equal(1f / MathF.Sqrt(8), created.Spec.Scale);

        var described = await Client.GetModelAsync(model);
        Assert.Equal(2 * 3, described.Heads.Length);
        Assert.Equal([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)], described.Heads.Select(h => (h.Layer, h.Group)).Order());
        Assert.Contains(model, (await Client.ListModelsAsync()).Select(m => m.Name));

        await Client.DeleteModelAsync(model);
        var missing = await Assert.ThrowsAsync<HeadwiseException>(() => Client.GetModelAsync(model));
        Assert.Equal(ErrorCode.NotFound, missing.Code);
        Assert.DoesNotContain(model, (await Client.ListModelsAsync()).Select(m => m.Name));
    }

    [Fact]
    public async Task Errors_arrive_as_typed_exceptions_naming_the_field()
    {
        string model = $"{Prefix}-errors";
        var spec = new AttentionSpec { ModelDim = 16, HeadCount = 2 };
        await Client.CreateModelAsync(model, spec);

        var duplicate = await Assert.ThrowsAsync<HeadwiseException>(() => Client.CreateModelAsync(model, spec));
        Assert.Equal(ErrorCode.AlreadyExists, duplicate.Code);

        var badSpec = await Assert.ThrowsAsync<HeadwiseException>(() => Client.CreateModelAsync($"{model}-bad", spec with { HeadCount = 3 }));
        Assert.Equal(ErrorCode.InvalidArgument, badSpec.Code);
        Assert.Contains("head", badSpec.Message);

        var input = new AttentionInput { Input = new FloatTensor(new float[16], 1, 1, 16) };
        var beforeWeights = await Assert.ThrowsAsync<HeadwiseException>(() => Client.ForwardAsync(model, input));
        Assert.Equal(ErrorCode.FailedPrecondition, beforeWeights.Code);

        var unknown = await Assert.ThrowsAsync<HeadwiseException>(() => Client.ForwardAsync($"{model}-nope", input));
        Assert.Equal(ErrorCode.NotFound, unknown.Code);
        Assert.Contains($"{model}-nope", unknown.Message);
    }

    [Fact]
    public async Task A_bad_upload_changes_nothing()
    {
        var golden = GoldenCase.Load("gpt2-tiny");
        string model = $"{Prefix}-atomic";
        await Client.CreateModelAsync(model, golden.Spec);
        await Client.UploadWeightsAsync(model, new MemoryStream(golden.Bytes), golden.Layout, golden.Prefix);

        // Layer 1 lacks c_proj.weight: the whole upload must be refused, layer 0 included.
        var damaged = golden.File.Tensors.Values
            .Where(t => t.Name != "h.1.attn.c_proj.weight")
            .Select(t => new SafetensorsEntry(t.Name, t.DType, t.Shape, t.Data.ToArray()))
            .Select(e => e.Name == "h.0.attn.c_attn.weight" ? e with { Data = new byte[e.Data.Length] } : e);
        var error = await Assert.ThrowsAsync<HeadwiseException>(() =>
            Client.UploadWeightsAsync(model, new MemoryStream(SafetensorsWriter.ToBytes(damaged)), golden.Layout, golden.Prefix));
        Assert.Equal(ErrorCode.InvalidArgument, error.Code);
        Assert.Contains("h.1.attn.c_proj.weight", error.Message);
        Assert.Contains("[64, 64]", error.Message);

        var output = await Client.ForwardAsync(model, new AttentionInput
        {
            Input = new FloatTensor(golden.Input, golden.Batch, golden.Tokens, golden.Spec.ModelDim),
            Causal = true,
        });
        Tolerance.AssertClose(golden.Expected("expected.0.causal"), output.Output.Data.Span, "after a refused upload");
    }
}

[Collection(SiloCollection.Name)]
public sealed class GrpcTransportTests(SiloFixture silo) : AttentionClientContract(silo)
{
    protected override string Prefix => "grpc";
    protected override IAttentionClient CreateClient() => Silo.CreateGrpcClient();
}

[Collection(SiloCollection.Name)]
public sealed class OrleansTransportTests(SiloFixture silo) : AttentionClientContract(silo)
{
    protected override string Prefix => "orleans";
    protected override IAttentionClient CreateClient() => Silo.CreateOrleansClient();
}

/// <summary>The whole contract, golden cases included, with X and Y through shared memory (<see cref="SharedMemoryMode.On"/>).</summary>
[Collection(SiloCollection.Name)]
public sealed class GrpcSharedMemoryTransportTests(SiloFixture silo) : AttentionClientContract(silo)
{
    protected override string Prefix => "grpc-shm";
    protected override IAttentionClient CreateClient() =>
        new GrpcAttentionClient(Silo.GrpcAddress, new GrpcAttentionClientOptions { SharedMemory = SharedMemoryMode.On });
}
