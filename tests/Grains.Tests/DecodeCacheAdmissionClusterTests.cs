using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Kernels;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests;

/// <summary>
/// A silo whose K/V cache cap holds three sessions at their max_tokens: three sessions decode to the end at once,
/// exactly (the golden causal bounds) and without one cache evicted; a fourth session's first step is refused with
/// ResourceExhausted (it used to be admitted and evict the others' caches, which their next steps re-filled, and so on
/// for every step), leaves that session open at position 0, and goes through once a session has closed.
/// </summary>
[Collection(DecodeClusterCollection.Name)]
public sealed class DecodeCacheAdmissionClusterTests : IAsyncLifetime
{
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-small-shape");
    private TestCluster _cluster = null!;

    // Three sessions of the golden batch at max_tokens = the golden length, over every head group of the layer.
    private static long ThreeSessions
    {
        get
        {
            var spec = Golden.Spec.Resolve();
            return 3 * spec.GroupCount * SessionCaches.Reservation(Golden.Batch, spec.HeadDim, Golden.Tokens, window: 0);
        }
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage(StorageNames.Weights);
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            silo.Services.Configure<DecodeSessionOptions>(options => options.CacheBytesPerSilo = ThreeSessions);
        }
    }

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync() => await _cluster.StopAllSilosAsync();

    [Fact]
    public async Task Sessions_past_the_cache_cap_are_refused_not_thrashed()
    {
        var grains = _cluster.Client;
        await grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create("admission", Golden.Spec);
        await WeightUpload.UploadAsync(grains, "admission", Golden.Bytes, Golden.Layout, Golden.Prefix);
        var caches = ((InProcessSiloHandle)_cluster.Primary!).SiloHost.Services.GetRequiredService<SessionCaches>();
        int tokens = Golden.Tokens;

        var admitted = Enumerable.Range(0, 3).Select(_ => grains.GetGrain<IDecodeSessionGrain>(SessionIds.New())).ToArray();
        foreach (var session in admitted) await session.Open("admission", 0, tokens);
        var outputs = admitted.Select(_ => new float[Golden.Input.Length]).ToArray();
        await Task.WhenAll(admitted.Select((session, s) => Step(session, 0, outputs[s])));
        Assert.Equal(ThreeSessions, caches.Committed);

        var late = grains.GetGrain<IDecodeSessionGrain>(SessionIds.New());
        await late.Open("admission", 0, tokens);
        var refused = await Assert.ThrowsAsync<HeadwiseException>(() => Step(late, 0, new float[Golden.Input.Length]));
        Assert.Equal(ErrorCode.ResourceExhausted, refused.Code);
        Assert.Contains("Headwise__Sessions__CacheBytesPerSilo", refused.Message);

        // The three decode to the end at once, none losing its caches to another.
        await Task.WhenAll(admitted.Select(async (session, s) =>
        {
            for (int t = 1; t < tokens; t++) await Step(session, t, outputs[s]);
        }));
        Assert.Equal(0, caches.Evictions);
        var expected = Golden.Expected("expected.0.causal");
        for (int s = 0; s < 3; s++) Tolerance.AssertClose(expected, outputs[s], $"admitted session {s}");

        // A closed session's reservation is the late one's room; it decodes from position 0 as any session would.
        await admitted[0].Close();
        var late_output = new float[Golden.Input.Length];
        for (int t = 0; t < tokens; t++)
        {
            var result = await Step(late, t, late_output);
            Assert.Equal(t + 1, result.Position);
        }
        Tolerance.AssertClose(expected, late_output, "the late session");
        Assert.Equal(0, caches.Evictions);
        foreach (var session in admitted.Skip(1).Append(late)) await session.Close();
        Assert.Equal(0, caches.Committed);
    }

    // Token t of every golden sequence: [B, 1, D]; its answer kept at token t of the output.
    private static async Task<DecodeResult> Step(IDecodeSessionGrain session, int t, float[] output)
    {
        int batch = Golden.Batch, tokens = Golden.Tokens, modelDim = Golden.Spec.ModelDim;
        var rows = new float[batch * modelDim];
        for (int b = 0; b < batch; b++) Golden.Input.AsSpan((b * tokens + t) * modelDim, modelDim).CopyTo(rows.AsSpan(b * modelDim));
        var result = await session.Decode(new DecodeCommand { Batch = batch, Tokens = 1, ModelDim = modelDim, Input = FloatBytes.ToBytes(rows) });
        var y = FloatBytes.AsFloats(result.Output);
        for (int b = 0; b < batch; b++) y.Slice(b * modelDim, modelDim).CopyTo(output.AsSpan((b * tokens + t) * modelDim));
        return result;
    }
}
