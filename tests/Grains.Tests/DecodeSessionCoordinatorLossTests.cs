using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Kernels;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Storage;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests;

/// <summary>
/// Three silos sharing one grain storage: a session whose coordinator's silo dies is rebuilt from storage on another
/// silo and its steps stay those of one causal Forward; a closed session leaves no cache on any silo; an idle open
/// session's caches outlive their lease (its coordinator renews it) while an orphan's expire; an unknown session id is
/// answered NotFound without an activation that lingers.
/// </summary>
[Collection(DecodeClusterCollection.Name)]
public sealed class DecodeSessionCoordinatorLossTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Weights, (_, _) => new ProcessWideStorage());
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(10));
            // Small segments: the session's inputs span several, so the rebuild reads more than one.
            // A short cache lease: an open session's coordinator must renew its idle caches, an orphan's expire.
            silo.Services.Configure<DecodeSessionOptions>(o =>
            {
                o.InputSegmentBytes = 4 * 768 * sizeof(float);
                o.CacheLeaseSeconds = 3;
            });
        }
    }

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(3);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync() => await _cluster.StopAllSilosAsync();

    private IGrainFactory Grains => _cluster.Client;

    private SessionCaches[] Caches() =>
        _cluster.Silos.Cast<InProcessSiloHandle>().Select(s => s.SiloHost.Services.GetRequiredService<SessionCaches>()).ToArray();

    private async Task<GoldenCase> Load(string model)
    {
        var golden = GoldenCase.Load("gpt2-small-shape");
        await Grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create(model, golden.Spec);
        await WeightUpload.UploadAsync(Grains, model, golden.Bytes, golden.Layout, golden.Prefix);
        return golden;
    }

    private static DecodeCommand Step(GoldenCase golden, int start, int count) => DecodeSteps.Rows(golden, start, count);

    [Fact]
    public async Task A_session_survives_the_loss_of_its_coordinators_silo()
    {
        var golden = await Load("coordinator-loss");
        int batch = golden.Batch, tokens = golden.Tokens, modelDim = golden.Spec.ModelDim;
        var expected = await Grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("coordinator-loss", 0)).Forward(new ForwardCommand
        {
            Batch = batch, Tokens = tokens, ModelDim = modelDim, Input = FloatBytes.ToBytes(golden.Input), Causal = true,
        });

        // A client's call places the coordinator on any silo; open until it is on one the test may kill (not the primary).
        var secondaries = _cluster.SecondarySilos.ToDictionary(s => s.SiloAddress.Endpoint.ToString());
        string id = "";
        SiloHandle? victim = null;
        for (int attempt = 0; attempt < 20 && victim is null; attempt++)
        {
            id = SessionIds.New();
            await Grains.GetGrain<IDecodeSessionGrain>(id).Open("coordinator-loss", 0, tokens);
            if (await DecodeSteps.CoordinatorSilo(Grains, id) is { } silo && secondaries.TryGetValue(silo, out var handle)) victim = handle;
            else await Grains.GetGrain<IDecodeSessionGrain>(id).Close();
        }
        Assert.NotNull(victim);
        var session = Grains.GetGrain<IDecodeSessionGrain>(id);

        var actual = new float[batch * tokens * modelDim];
        int half = tokens / 2, refilledAfterLoss = 0;
        const int chunk = 3;
        for (int start = 0; start < tokens; start += chunk)
        {
            if (start >= half && victim.IsActive && await DecodeSteps.CoordinatorSilo(Grains, id) == victim.SiloAddress.Endpoint.ToString())
                await _cluster.KillSiloAsync(victim);
            int count = Math.Min(chunk, tokens - start);
            var result = await DecodeSteps.DecodeRetrying(session, Step(golden, start, count));
            Assert.Equal(start + count, result.Position);
            if (start >= half) refilledAfterLoss += result.ReprefilledGroups;
            var y = FloatBytes.AsFloats(result.Output);
            for (int b = 0; b < batch; b++)
                y.Slice(b * count * modelDim, count * modelDim).CopyTo(actual.AsSpan((b * tokens + start) * modelDim));
        }

        Assert.False(victim.IsActive);
        var rebuiltOn = await DecodeSteps.CoordinatorSilo(Grains, id);
        Assert.NotNull(rebuiltOn);
        Assert.NotEqual(victim.SiloAddress.Endpoint.ToString(), rebuiltOn);
        // The killed silo took its heads' caches too: the steps after the loss re-filled at least one group.
        Assert.True(refilledAfterLoss > 0, "no head group was re-filled after the coordinator's silo died");
        Tolerance.AssertClose(FloatBytes.AsFloats(expected.Output), actual, "decode across the loss of the coordinator's silo");
        await session.Close();
    }

    [Fact]
    public async Task Closing_a_session_drops_its_caches_on_every_silo()
    {
        var golden = await Load("close-frees");
        string id = SessionIds.New();
        var session = Grains.GetGrain<IDecodeSessionGrain>(id);
        await session.Open("close-frees", 0, golden.Tokens);
        await session.Decode(Step(golden, 0, 3));
        await session.Decode(Step(golden, 3, 2));
        var caches = Caches();
        int groups = golden.Spec.Resolve().GroupCount;
        Assert.Equal(groups, caches.Sum(c => c.CountOf(id)));
        // A cache left behind on a silo where none of the session's heads lives now (a head that moved away).
        var stray = caches.First(c => c.CountOf(id) < groups);
        stray.Put("close-frees/0/moved", id, [new KeyValueCache(golden.Spec.ModelDim / golden.Spec.HeadCount)]);

        await session.Close();

        Assert.All(caches, c => Assert.Equal(0, c.CountOf(id)));
        var gone = await Assert.ThrowsAsync<HeadwiseException>(() => session.Decode(Step(golden, 5, 1)));
        Assert.Equal(ErrorCode.NotFound, gone.Code);
    }

    [Fact]
    public async Task An_idle_open_session_keeps_its_caches_past_the_lease_while_an_orphans_expire()
    {
        var golden = await Load("lease");
        string id = SessionIds.New();
        var session = Grains.GetGrain<IDecodeSessionGrain>(id);
        await session.Open("lease", 0, golden.Tokens);
        await session.Decode(Step(golden, 0, 3));
        var holder = Caches().First(c => c.CountOf(id) > 0);
        // The cache of a session nobody coordinates (its coordinator's silo died, its caller left).
        string orphan = SessionIds.New();
        holder.Put("lease/0/0", orphan, [new KeyValueCache(golden.Spec.ModelDim / golden.Spec.HeadCount)]);

        // More than two leases of 3 s, with another session's steps on the same silo (which sweep expired leases). Each
        // sweep comes just after a renewal the open session's grain made (its timer renews every second): the test says
        // that renewals keep the caches, and a machine that stalled the grain's timer past the lease must not decide it.
        string busy = SessionIds.New();
        for (int second = 0; second < 7; second++)
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
            long renewals = holder.Renewals;
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (holder.Renewals == renewals && waited.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(10);
            Assert.True(holder.Renewals > renewals, "the open session's grain renewed no lease for 30 s");
            holder.Put("lease/0/busy", busy, [new KeyValueCache(golden.Spec.ModelDim / golden.Spec.HeadCount)]);
        }

        var next = await session.Decode(Step(golden, 3, 2));
        Assert.Equal(0, next.ReprefilledGroups);
        Assert.Equal(0, holder.CountOf(orphan));
        await session.Close();
    }

    [Fact]
    public async Task An_unknown_session_id_is_not_found_and_its_activation_does_not_linger()
    {
        string id = SessionIds.New();
        var unknown = await Assert.ThrowsAsync<HeadwiseException>(() =>
            Grains.GetGrain<IDecodeSessionGrain>(id).Decode(new DecodeCommand { Batch = 1, Tokens = 1, ModelDim = 4, Input = new byte[16] }));
        Assert.Equal(ErrorCode.NotFound, unknown.Code);
        Assert.Contains(id, unknown.Message);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (await DecodeSteps.CoordinatorSilo(Grains, id) is not null && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Null(await DecodeSteps.CoordinatorSilo(Grains, id));
    }
}
