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
    private const int IdleSeconds = 2;
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Weights, (_, _) => new ProcessWideStorage());
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(5));
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

    private async Task<string?> CoordinatorSilo(string session)
    {
        var statistics = await _cluster.Client.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics();
        return statistics.FirstOrDefault(s => s.GrainType.Contains(nameof(DecodeSessionGrain), StringComparison.Ordinal)
            && s.GrainId.Key.ToString() == session)?.SiloAddress.Endpoint.ToString();
    }

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

        // The orphan: coordinated on the silo the test kills.
        var secondary = _cluster.SecondarySilos[0];
        string orphan = "";
        for (int attempt = 0; attempt < 20 && orphan.Length == 0; attempt++)
        {
            string id = SessionIds.New();
            await client.GetGrain<IDecodeSessionGrain>(id).Open("orphans", 0, golden.Tokens);
            if (await CoordinatorSilo(id) == secondary.SiloAddress.Endpoint.ToString()) orphan = id;
            else await client.GetGrain<IDecodeSessionGrain>(id).Close();
        }
        Assert.NotEmpty(orphan);
        await client.GetGrain<IDecodeSessionGrain>(orphan).Decode(DecodeSteps.Rows(golden, 0, 4));
        Assert.Equal((true, true), (Stored(orphan).Record, Stored(orphan).Listed));
        Assert.True(Stored(orphan).Inputs > 0);

        // The kept one: its caller steps it every half second, well inside the idle limit.
        string kept = SessionIds.New();
        var keptSession = client.GetGrain<IDecodeSessionGrain>(kept);
        await keptSession.Open("orphans", 0, 1024);
        int position = 0, modelDim = golden.Spec.ModelDim;
        var random = new Random(5);
        DecodeCommand Token() => new()
        {
            Batch = 1, Tokens = 1, ModelDim = modelDim, ExpectedPosition = position,
            Input = FloatBytes.ToBytes(Enumerable.Range(0, modelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray()),
        };

        await _cluster.KillSiloAsync(secondary);
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (Stored(orphan) != (false, 0, false) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(500);
            position = (await DecodeRetrying(keptSession, Token())).Position;
        }
        Assert.Equal((false, 0, false), Stored(orphan));
        // Nobody called the orphan: it is gone for its caller too.
        var gone = await Assert.ThrowsAsync<HeadwiseException>(() => client.GetGrain<IDecodeSessionGrain>(orphan).Decode(DecodeSteps.Rows(golden, 4, 1)));
        Assert.Equal(ErrorCode.NotFound, gone.Code);

        Assert.True(position > 0);
        Assert.True(Stored(kept).Record && Stored(kept).Listed);
        var next = await DecodeRetrying(keptSession, Token());
        Assert.Equal(position + 1, next.Position);
        await keptSession.Close();
        Assert.Equal((false, 0, false), Stored(kept));
    }

    // The kept session's coordinator may have been on the killed silo's directory partition: a call may fail until the
    // cluster has declared it dead. Each step names its position, so a retry is never applied twice.
    private static async Task<DecodeResult> DecodeRetrying(IDecodeSessionGrain session, DecodeCommand command)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                return await session.Decode(command);
            }
            catch (Exception exception) when (exception is not HeadwiseException { Code: not ErrorCode.Unavailable } && DateTime.UtcNow < deadline)
            {
                await Task.Delay(500);
            }
        }
    }
}
