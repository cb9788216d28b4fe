using System.Collections.Concurrent;
using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Grains.Decode;
using Headwise.Grains.Placement;
using Headwise.Kernels;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Storage;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests;

/// <summary>
/// Grain storage shared by every silo of the test process, standing in for Redis: a killed silo takes only its
/// activations (and their K/V caches) with it, not the weights.
/// </summary>
internal sealed class ProcessWideStorage : IGrainStorage
{
    private static readonly ConcurrentDictionary<(string, GrainId), object> States = new();

    /// <summary>Every key held now: (state name, grain id).</summary>
    public static IReadOnlyList<(string StateName, GrainId Id)> Keys => States.Keys.Select(k => (k.Item1, k.Item2)).ToList();

    /// <summary>The state held under a key, or null.</summary>
    public static object? Held(string stateName, GrainId id) => States.TryGetValue((stateName, id), out var state) ? state : null;

    // The session index's list is copied in and out: its grain changes it in place while a test reads what is stored.
    private static object Copy(object state) =>
        state is SessionIndexState index ? new SessionIndexState { Opened = new(index.Opened, StringComparer.Ordinal) } : state;

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (States.TryGetValue((stateName, grainId), out var state))
        {
            grainState.State = (T)Copy(state);
            grainState.RecordExists = true;
            grainState.ETag = "1";
        }
        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        States[(stateName, grainId)] = Copy(grainState.State!);
        grainState.RecordExists = true;
        grainState.ETag = "1";
        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        States.TryRemove((stateName, grainId), out _);
        grainState.RecordExists = false;
        return Task.CompletedTask;
    }
}

/// <summary>
/// The decode cluster tests run alone, after the others: their clusters would otherwise load the cores while other
/// classes' silos measure their speed for placement, and skew it.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DecodeClusterCollection
{
    public const string Name = "decode clusters";
}

internal static class DecodeSteps
{
    /// <summary>A one-silo cluster configured by <typeparamref name="TConfigurator"/>, deployed.</summary>
    public static async Task<TestCluster> DeployOneSilo<TConfigurator>() where TConfigurator : ISiloConfigurator, new()
    {
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<TConfigurator>();
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    /// <summary>Creates <paramref name="model"/> from a golden case with RoPE on and uploads its weights.</summary>
    public static async Task<GoldenCase> LoadWithRope(IClusterClient client, string model, string caseName = "linear-gqa-window")
    {
        var golden = GoldenCase.Load(caseName);
        await client.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create(model, golden.Spec with { RopeTheta = 10000 });
        await WeightUpload.UploadAsync(client, model, golden.Bytes, golden.Layout, golden.Prefix);
        return golden;
    }

    /// <summary>
    /// Opens a session, steps it once, uploads the same weights again (new versions), and expects the next step to fail
    /// with FailedPrecondition naming the session; a session opened afterwards decodes the new weights correctly.
    /// </summary>
    public static async Task AssertReuploadEndsSession(IGrainFactory grains, string model, GoldenCase golden)
    {
        var id = SessionIds.New();
        var session = grains.GetGrain<IDecodeSessionGrain>(id);
        await session.Open(model, 0, golden.Tokens);
        int modelDim = golden.Spec.ModelDim;
        DecodeCommand Step(int start, int count) => new()
        {
            Batch = 1, Tokens = count, ModelDim = modelDim, Input = FloatBytes.ToBytes(golden.Input.AsSpan(start * modelDim, count * modelDim).ToArray()),
        };
        await session.Decode(Step(0, 2));
        await WeightUpload.UploadAsync(grains, model, golden.Bytes, golden.Layout, golden.Prefix);
        var changed = await Assert.ThrowsAsync<HeadwiseException>(() => session.Decode(Step(2, 1)));
        Assert.Equal(ErrorCode.FailedPrecondition, changed.Code);
        Assert.Contains(id, changed.Message);
        Assert.Contains("uploaded again", changed.Message);
        await session.Close();

        var expected = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(model, 0)).Forward(new ForwardCommand
        {
            Batch = golden.Batch, Tokens = golden.Tokens, ModelDim = modelDim, Input = FloatBytes.ToBytes(golden.Input), Causal = true,
        });
        var (actual, _) = await Run(grains, model, golden, chunk: 3);
        Tolerance.AssertClose(FloatBytes.AsFloats(expected.Output), actual, "a session opened after the re-upload");
    }

    /// <summary>The silo whose activation coordinates <paramref name="session"/> now, or null.</summary>
    public static async Task<string?> CoordinatorSilo(IGrainFactory grains, string session)
    {
        var statistics = await grains.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics();
        return statistics.FirstOrDefault(s => s.GrainType.Contains(nameof(DecodeSessionGrain), StringComparison.Ordinal)
            && s.GrainId.Key.ToString() == session)?.SiloAddress.Endpoint.ToString();
    }

    /// <summary>
    /// A step retried while the cluster declares a killed silo dead (a call may fail until then). The step names its
    /// position, so a retry of a step that was applied after all is answered again, never applied twice.
    /// </summary>
    public static async Task<DecodeResult> DecodeRetrying(IDecodeSessionGrain session, DecodeCommand command)
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

    /// <summary>The step of the golden case's tokens [start, start + count), naming its expected position.</summary>
    public static DecodeCommand Rows(GoldenCase golden, int start, int count)
    {
        int batch = golden.Batch, tokens = golden.Tokens, modelDim = golden.Spec.ModelDim;
        var rows = new float[batch * count * modelDim];
        for (int b = 0; b < batch; b++)
            golden.Input.AsSpan((b * tokens + start) * modelDim, count * modelDim).CopyTo(rows.AsSpan(b * count * modelDim));
        return new DecodeCommand { Batch = batch, Tokens = count, ModelDim = modelDim, Input = FloatBytes.ToBytes(rows), ExpectedPosition = start };
    }

    /// <summary>Runs the golden case's input through a session <paramref name="chunk"/> tokens at a time; returns Y and the steps.</summary>
    public static async Task<(float[] Output, List<DecodeResult> Steps)> Run(IGrainFactory grains, string model, GoldenCase golden, int chunk,
        Func<int, Task>? beforeStep = null)
    {
        var session = grains.GetGrain<IDecodeSessionGrain>(SessionIds.New());
        await session.Open(model, 0, golden.Tokens);
        int batch = golden.Batch, tokens = golden.Tokens, modelDim = golden.Spec.ModelDim;
        var output = new float[batch * tokens * modelDim];
        var steps = new List<DecodeResult>();
        for (int start = 0; start < tokens; start += chunk)
        {
            if (beforeStep is not null) await beforeStep(start);
            int count = Math.Min(chunk, tokens - start);
            var step = new float[batch * count * modelDim];
            for (int b = 0; b < batch; b++)
                golden.Input.AsSpan((b * tokens + start) * modelDim, count * modelDim).CopyTo(step.AsSpan(b * count * modelDim));
            var result = await session.Decode(new DecodeCommand { Batch = batch, Tokens = count, ModelDim = modelDim, Input = FloatBytes.ToBytes(step) });
            steps.Add(result);
            var y = FloatBytes.AsFloats(result.Output);
            for (int b = 0; b < batch; b++)
                y.Slice(b * count * modelDim, count * modelDim).CopyTo(output.AsSpan((b * tokens + start) * modelDim));
        }
        await session.Close();
        return (output, steps);
    }
}

/// <summary>
/// Three silos with the heads of a GPT-2-shaped layer spread over them: the silo holding some heads of an open
/// session dies, and the next steps are still those of one causal Forward (the coordinator re-fills the lost heads).
/// </summary>
[Collection(DecodeClusterCollection.Name)]
public sealed class DecodeSessionSiloLossTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Weights, (_, _) => new ProcessWideStorage());
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(10));
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

    [Fact]
    public async Task A_reupload_ends_an_open_session_with_a_clear_error()
    {
        var golden = GoldenCase.Load("gpt2-small-shape");
        await _cluster.Client.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create("reupload", golden.Spec);
        await WeightUpload.UploadAsync(_cluster.Client, "reupload", golden.Bytes, golden.Layout, golden.Prefix);
        await DecodeSteps.AssertReuploadEndsSession(_cluster.Client, "reupload", golden);
    }

    [Fact]
    public async Task A_session_survives_the_loss_of_a_silo_holding_some_of_its_heads()
    {
        var golden = GoldenCase.Load("gpt2-small-shape");
        var grains = _cluster.Client;
        await grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create("loss", golden.Spec);
        var model = await WeightUpload.UploadAsync(grains, "loss", golden.Bytes, golden.Layout, golden.Prefix);
        var expected = await grains.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("loss", 0)).Forward(new ForwardCommand
        {
            Batch = golden.Batch, Tokens = golden.Tokens, ModelDim = golden.Spec.ModelDim, Input = FloatBytes.ToBytes(golden.Input), Causal = true,
        });

        var management = grains.GetGrain<IManagementGrain>(0);
        int half = golden.Tokens / 2;
        string? killed = null;
        var (actual, steps) = await DecodeSteps.Run(grains, "loss", golden, chunk: 3, async start =>
        {
            if (start < half || killed is not null) return;
            // Kill a secondary silo that holds heads of this layer but not the session's coordinator.
            var sessions = (await management.GetDetailedGrainStatistics())
                .Where(s => s.GrainType.Contains(nameof(DecodeSessionGrain), StringComparison.Ordinal))
                .Select(s => s.SiloAddress.Endpoint.ToString()).ToHashSet();
            var victim = _cluster.SecondarySilos.First(s =>
                !sessions.Contains(s.SiloAddress.Endpoint.ToString()) &&
                model.Heads.Any(h => h.Silo == s.SiloAddress.Endpoint.ToString()));
            killed = victim.SiloAddress.Endpoint.ToString();
            await _cluster.KillSiloAsync(victim);
        });

        Assert.NotNull(killed);
        Tolerance.AssertClose(FloatBytes.AsFloats(expected.Output), actual, "decode across a silo loss");
        int lostGroups = model.Heads.Count(h => h.Silo == killed);
        Assert.True(lostGroups > 0);
        Assert.Equal(lostGroups, steps.Sum(s => s.ReprefilledGroups));
        // Heads on the coordinator's silo were computed in-process, the others by message: both paths were taken.
        Assert.Contains(steps, s => s.LocalGroups > 0 && s.LocalGroups < golden.Spec.Resolve().GroupCount);
        // Once the session knows where its heads are, a step sends one message per other silo (here 2), not one per
        // remote head; the second step is before the kill.
        int otherSilos = model.Heads.Select(h => h.Silo).Distinct().Count() - 1;
        Assert.Equal(otherSilos, steps[1].RemoteMessages);
        Assert.True(golden.Spec.Resolve().GroupCount - steps[1].LocalGroups > otherSilos);
    }
}

/// <summary>
/// One silo with tiny session limits: every head cache is evicted after each step (caches overcommitted on a 1-byte cap,
/// so every step re-fills from the session's inputs, and must still be right), and inputs have a byte cap. Sessions keep
/// the default idle time here: a second's idle limit ended these sessions whenever the machine stalled between two steps.
/// </summary>
[Collection(DecodeClusterCollection.Name)]
public sealed class DecodeSessionLimitTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage(StorageNames.Weights);
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            silo.Services.Configure<DecodeSessionOptions>(o =>
            {
                o.CacheBytesPerSilo = 1;
                o.OvercommitCaches = true;
                o.InputBytesPerSilo = 1 << 20;
            });
        }
    }

    public async Task InitializeAsync() => _cluster = await DecodeSteps.DeployOneSilo<SiloConfigurator>();

    public async Task DisposeAsync() => await _cluster.StopAllSilosAsync();

    private Task<GoldenCase> Load(string model) => DecodeSteps.LoadWithRope(_cluster.Client, model);

    [Fact]
    public async Task A_reupload_ends_an_open_session_with_a_clear_error_even_when_every_cache_is_refilled()
    {
        var golden = await Load("reupload-refilled");
        await DecodeSteps.AssertReuploadEndsSession(_cluster.Client, "reupload-refilled", golden);
    }

    [Fact]
    public async Task Evicted_caches_are_refilled_transparently()
    {
        var golden = await Load("evicted");
        var expected = await _cluster.Client.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer("evicted", 0)).Forward(new ForwardCommand
        {
            Batch = golden.Batch, Tokens = golden.Tokens, ModelDim = golden.Spec.ModelDim, Input = FloatBytes.ToBytes(golden.Input), Causal = true,
        });
        var (actual, steps) = await DecodeSteps.Run(_cluster.Client, "evicted", golden, chunk: 2);
        Tolerance.AssertClose(FloatBytes.AsFloats(expected.Output), actual, "decode with every cache evicted");
        int groups = golden.Spec.Resolve().GroupCount;
        Assert.All(steps.Skip(1), s => Assert.Equal(groups, s.ReprefilledGroups));
        // One silo: every head is computed in-process by the session's coordinator, re-fills included.
        Assert.All(steps, s => Assert.Equal(groups, s.LocalGroups));
    }

    [Fact]
    public async Task Inputs_past_the_silo_cap_are_refused_naming_the_session()
    {
        var golden = await Load("capped");
        var id = SessionIds.New();
        var session = _cluster.Client.GetGrain<IDecodeSessionGrain>(id);
        await session.Open("capped", 0, 8192);
        int modelDim = golden.Spec.ModelDim, tokens = (1 << 20) / (modelDim * 4) + 1;
        var full = await Assert.ThrowsAsync<HeadwiseException>(() => session.Decode(new DecodeCommand
        {
            Batch = 1, Tokens = tokens, ModelDim = modelDim, Input = new byte[tokens * modelDim * 4],
        }));
        Assert.Equal(ErrorCode.ResourceExhausted, full.Code);
        Assert.Contains(id, full.Message);
        Assert.Contains("InputBytesPerSilo", full.Message);
        // The refused step left the session usable.
        var ok = await session.Decode(new DecodeCommand { Batch = 1, Tokens = 1, ModelDim = modelDim, Input = new byte[modelDim * 4] });
        Assert.Equal(1, ok.Position);
    }
}

/// <summary>One silo whose sessions expire after <see cref="IdleSeconds"/> idle; its own cluster so that no other test's sessions live under that limit.</summary>
[Collection(DecodeClusterCollection.Name)]
public sealed class DecodeSessionIdleTests : IAsyncLifetime
{
    // Long enough that a stalled machine does not expire the session between Open and its first step.
    private const int IdleSeconds = 2;
    private TestCluster _cluster = null!;

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage(StorageNames.Weights);
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            silo.Services.Configure<DecodeSessionOptions>(o => o.IdleSeconds = IdleSeconds);
        }
    }

    public async Task InitializeAsync() => _cluster = await DecodeSteps.DeployOneSilo<SiloConfigurator>();

    public async Task DisposeAsync() => await _cluster.StopAllSilosAsync();

    private Task<GoldenCase> Load(string model) => DecodeSteps.LoadWithRope(_cluster.Client, model);

    [Fact]
    public async Task An_idle_session_expires_and_says_so()
    {
        var golden = await Load("idle");
        var id = SessionIds.New();
        var session = _cluster.Client.GetGrain<IDecodeSessionGrain>(id);
        await session.Open("idle", 0, 8);
        var step = new DecodeCommand { Batch = 1, Tokens = 1, ModelDim = golden.Spec.ModelDim, Input = new byte[golden.Spec.ModelDim * 4] };
        await session.Decode(step);
        await Task.Delay(TimeSpan.FromSeconds(IdleSeconds * 2.5));
        var gone = await Assert.ThrowsAsync<HeadwiseException>(() => session.Decode(step));
        Assert.Equal(ErrorCode.NotFound, gone.Code);
        Assert.Contains(id, gone.Message);
        Assert.Contains("idle", gone.Message);
    }
}
