using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Kernels;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests;

/// <summary>
/// A step whose session record write throws, on Orleans' memory storage (it checks ETags as Redis does). A write that
/// landed before it threw (a storage timeout) left the coordinator behind storage: its retry must be answered from the
/// record, not applied again on a stale ETag. A write that never landed is applied once by its retry. Either way the
/// session's answers stay those of one causal Forward.
/// </summary>
[Collection(DecodeClusterCollection.Name)]
public sealed class DecodeSessionRecordWriteTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    /// <summary>The memory storage, with the next write of a session record failing once armed: after it landed, or before.</summary>
    private sealed class RecordFaultStorage(IGrainStorage inner) : IGrainStorage
    {
        private static int _armed; // 0: disarmed, 1: the write lands first, 2: it never lands

        public static void Arm(bool landed) => Volatile.Write(ref _armed, landed ? 1 : 2);

        public static void Disarm() => Volatile.Write(ref _armed, 0);

        public static bool Armed => Volatile.Read(ref _armed) != 0;

        public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
            inner.ReadStateAsync(stateName, grainId, grainState);

        public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            int fail = stateName == DecodeSessionGrain.RecordStateName ? Interlocked.Exchange(ref _armed, 0) : 0;
            if (fail == 0)
            {
                await inner.WriteStateAsync(stateName, grainId, grainState);
                return;
            }
            if (fail == 1)
            {
                // What the caller's copy of the state would look like had the answer never come back: its old ETag.
                string? etag = grainState.ETag;
                await inner.WriteStateAsync(stateName, grainId, grainState);
                grainState.ETag = etag;
            }
            throw new TimeoutException($"session record write timed out on purpose ({(fail == 1 ? "after it landed" : "before it landed")}).");
        }

        public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
            inner.ClearStateAsync(stateName, grainId, grainState);
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage("weights-inner");
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Weights,
                (services, _) => new RecordFaultStorage(services.GetRequiredKeyedService<IGrainStorage>("weights-inner")));
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 10);
            // Small segments: the steps write whole segments and tail pieces both.
            silo.Services.Configure<DecodeSessionOptions>(o => o.InputSegmentBytes = 4 * 768 * sizeof(float));
        }
    }

    public async Task InitializeAsync() => _cluster = await DecodeSteps.DeployOneSilo<SiloConfigurator>();

    public async Task DisposeAsync()
    {
        RecordFaultStorage.Disarm();
        await _cluster.StopAllSilosAsync();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_step_whose_record_write_failed_is_retried_once_and_the_session_goes_on(bool landed)
    {
        var client = _cluster.Client;
        string model = landed ? "record-landed" : "record-lost";
        var golden = GoldenCase.Load("gpt2-small-shape");
        await client.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create(model, golden.Spec);
        await WeightUpload.UploadAsync(client, model, golden.Bytes, golden.Layout, golden.Prefix);
        int batch = golden.Batch, tokens = golden.Tokens, modelDim = golden.Spec.ModelDim;
        var expected = await client.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(model, 0)).Forward(new ForwardCommand
        {
            Batch = batch, Tokens = tokens, ModelDim = modelDim, Input = FloatBytes.ToBytes(golden.Input), Causal = true,
        });

        string id = SessionIds.New();
        var session = client.GetGrain<IDecodeSessionGrain>(id);
        await session.Open(model, 0, tokens);
        var actual = new float[batch * tokens * modelDim];
        const int chunk = 3, faulted = 2 * chunk; // the third step
        for (int start = 0; start < tokens; start += chunk)
        {
            int count = Math.Min(chunk, tokens - start);
            var command = DecodeSteps.Rows(golden, start, count);
            DecodeResult result;
            if (start == faulted)
            {
                RecordFaultStorage.Arm(landed);
                await Assert.ThrowsAnyAsync<Exception>(() => session.Decode(command));
                Assert.False(RecordFaultStorage.Armed);
                // One retry, as a client that names its position makes it: answered, not failed on a stale ETag.
                result = await session.Decode(command);
                Assert.Equal(landed, result.Replayed);
            }
            else
            {
                result = await session.Decode(command);
                Assert.False(result.Replayed);
            }
            Assert.Equal(start + count, result.Position);
            var y = FloatBytes.AsFloats(result.Output);
            for (int b = 0; b < batch; b++)
                y.Slice(b * count * modelDim, count * modelDim).CopyTo(actual.AsSpan((b * tokens + start) * modelDim));
        }
        Tolerance.AssertClose(FloatBytes.AsFloats(expected.Output), actual, $"decode across a failed record write ({(landed ? "landed" : "lost")})");
        await session.Close();
    }
}
