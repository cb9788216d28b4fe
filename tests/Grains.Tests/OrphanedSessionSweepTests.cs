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
/// A session whose coordinator's silo dies and whose caller never comes back: nothing calls it again, yet once it has
/// been idle past the limit the other silo's sweep (<see cref="SessionSweeper"/>) ends it, so its record, its stored
/// inputs and its entry in the session index are gone from storage. A session whose caller keeps stepping is left alone.
/// </summary>
[Collection(DecodeClusterCollection.Name)]
public sealed class OrphanedSessionSweepTests : IAsyncLifetime
{
    private const int IdleSeconds = 5;
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Weights, (_, _) => new ProcessWideStorage());
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(2));
            silo.Services.Configure<DecodeSessionOptions>(o => o.IdleSeconds = IdleSeconds);
        }
    }

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(2);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync() => await _cluster.StopAllSilosAsync();

    // What storage holds of a session: its record, its stored inputs, and whether the index lists it.
    private static (bool Record, int Inputs, bool Listed) Stored(string session)
    {
        var keys = ProcessWideStorage.Keys;
        bool record = keys.Any(k => k.StateName == DecodeSessionGrain.RecordStateName && k.Id.Key.ToString() == session);
        int inputs = keys.Count(k => k.StateName == "session-inputs" && k.Id.Key.ToString()!.StartsWith(session + "/", StringComparison.Ordinal));
        bool listed = keys.Where(k => k.StateName == "session-index")
            .Select(k => ProcessWideStorage.Held(k.StateName, k.Id))
            .OfType<SessionIndexState>()
            .Any(index => index.Opened.ContainsKey(session));
        return (record, inputs, listed);
    }

    [Fact]
    public async Task A_session_whose_coordinator_died_and_whose_caller_left_is_ended_and_its_storage_cleared()
    {
        var client = _cluster.Client;
        var golden = GoldenCase.Load("gpt2-small-shape");
        await client.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create("orphans", golden.Spec);
        await WeightUpload.UploadAsync(client, "orphans", golden.Bytes, golden.Layout, golden.Prefix);

        // The orphan, coordinated on the silo the test kills; the kept one, on the silo that stays.
        var secondary = _cluster.SecondarySilos[0];
        string orphan = await OpenOn(secondary.SiloAddress.Endpoint.ToString(), golden.Tokens);
        string kept = await OpenOn(_cluster.Primary!.SiloAddress.Endpoint.ToString(), 1024);
        await client.GetGrain<IDecodeSessionGrain>(orphan).Decode(DecodeSteps.Rows(golden, 0, 4));
        Assert.Equal((true, true), (Stored(orphan).Record, Stored(orphan).Listed));
        Assert.True(Stored(orphan).Inputs > 0);

        // The kept session's caller steps it every 0.3 s from before the kill, well inside the idle limit.
        var keptSession = client.GetGrain<IDecodeSessionGrain>(kept);
        int position = 0, modelDim = golden.Spec.ModelDim;
        var random = new Random(5);
        DecodeCommand Token() => new()
        {
            Batch = 1, Tokens = 1, ModelDim = modelDim, ExpectedPosition = position,
            Input = FloatBytes.ToBytes(Enumerable.Range(0, modelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray()),
        };
        using var stop = new CancellationTokenSource();
        var stepping = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                position = (await DecodeSteps.DecodeRetrying(keptSession, Token())).Position;
                await Task.Delay(300);
            }
        });

        await _cluster.KillSiloAsync(secondary);
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (Stored(orphan) != (false, 0, false) && DateTime.UtcNow < deadline && !stepping.IsCompleted) await Task.Delay(250);
        stop.Cancel();
        await stepping;
        Assert.Equal((false, 0, false), Stored(orphan));
        // Nobody called the orphan: it is gone for its caller too.
        var gone = await Assert.ThrowsAsync<HeadwiseException>(() => client.GetGrain<IDecodeSessionGrain>(orphan).Decode(DecodeSteps.Rows(golden, 4, 1)));
        Assert.Equal(ErrorCode.NotFound, gone.Code);

        Assert.True(position > 0);
        Assert.True(Stored(kept).Record && Stored(kept).Listed);
        var next = await keptSession.Decode(Token());
        Assert.Equal(position + 1, next.Position);
        await keptSession.Close();
        Assert.Equal((false, 0, false), Stored(kept));
    }

    // Opens sessions until one is coordinated on `silo` (a client's call lands on any silo); closes the others.
    private async Task<string> OpenOn(string silo, int maxTokens)
    {
        for (int attempt = 0; attempt < 40; attempt++)
        {
            string id = SessionIds.New();
            await _cluster.Client.GetGrain<IDecodeSessionGrain>(id).Open("orphans", 0, maxTokens);
            if (await DecodeSteps.CoordinatorSilo(_cluster.Client, id) == silo) return id;
            await _cluster.Client.GetGrain<IDecodeSessionGrain>(id).Close();
        }
        throw new InvalidOperationException($"no session was coordinated on {silo} in 40 opens.");
    }
}
