using Headwise.Contracts;
using Headwise.Grains.Forward;
using Headwise.Grains.Tests.Forward;
using Headwise.Kernels;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;
using Orleans.TestingHost;

namespace Headwise.Grains.Tests.Weights;

/// <summary>
/// Uploads switch a model's weights in one commit: three real silos in this process, forwards checked against float64
/// oracles of the old and the new weights (<see cref="LayerOracle"/>, max abs error ≤ 1e-4), through re-uploads under
/// load, a storage write failing at each write of an upload in turn, a caller giving up at each write, two uploads at
/// once, and an uploader that vanishes (its lease runs out, in a cluster of its own with a short lease).
/// </summary>
public abstract class WeightVersionCluster : IAsyncLifetime
{
    /// <summary>
    /// One xUnit collection for both classes: their silos share the process-wide <see cref="StorageFaults"/>, so a fault
    /// armed by one class's test would fire in the other's cluster, and each counts the writes of the other.
    /// </summary>
    public const string Collection = "weight versions";

    private const double Bound = 1e-4;
    private const string LeaseKey = "WeightVersionTests:UploadLeaseSeconds";
    protected TestCluster _cluster = null!;

    /// <summary>The silos' Headwise__UploadLeaseSeconds; null for the default.</summary>
    protected abstract int? UploadLeaseSeconds { get; }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo)
        {
            silo.AddMemoryGrainStorage("weights-inner");
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Weights,
                (services, _) => new FaultyGrainStorage(services.GetRequiredKeyedService<IGrainStorage>("weights-inner")));
            silo.AddHeadwiseGrains(KernelKind.Simd, speedGflops: 100);
            if (int.TryParse(silo.Configuration[LeaseKey], out int lease)) silo.Services.Configure<WeightUploadOptions>(o => o.UploadLeaseSeconds = lease);
        }
    }

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(3);
        if (UploadLeaseSeconds is { } lease) builder.Properties[LeaseKey] = lease.ToString(System.Globalization.CultureInfo.InvariantCulture);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        StorageFaults.Disarm();
        await _cluster.StopAllSilosAsync();
    }

    protected static readonly AttentionSpec Shape = new() { ModelDim = 64, HeadCount = 8, KvHeadCount = 4, HeadDim = 16, LayerCount = 2, Bias = true };
    protected const int Tokens = 12;

    /// <summary>A model with weights <c>seed</c>, and what each layer answers for the test's X with each weight set.</summary>
    protected sealed record Model(string Name, AttentionSpec Spec, float[] X, Dictionary<int, (IReadOnlyList<LayerWeights> Weights, double[][] Y)> Sets);

    protected async Task<Model> CreateModel(string name, params int[] seeds)
    {
        var spec = (await _cluster.Client.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create(name, Shape)).Spec;
        var random = new Random(name.Length);
        var x = Enumerable.Range(0, Tokens * spec.ModelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var sets = seeds.ToDictionary(seed => seed, seed =>
        {
            var weights = SeededWeights.Create(spec, seed, std: 0.2f);
            var y = weights.Select(layer => LayerOracle.Forward(spec, layer, x, 1, Tokens, causal: true).Y).ToArray();
            return (Weights: (IReadOnlyList<LayerWeights>)weights, Y: y);
        });
        await WeightUpload.StoreAsync(_cluster.Client, name, sets[seeds[0]].Weights);
        return new Model(name, spec, x, sets);
    }

    protected async Task<float[]> Forward(Model model, int layer) =>
        FloatBytes.ToFloats((await _cluster.Client.GetGrain<IForwardCoordinatorGrain>(GrainKeys.Layer(model.Name, layer)).Forward(new ForwardCommand
        {
            Batch = 1, Tokens = Tokens, ModelDim = model.Spec.ModelDim, Input = FloatBytes.ToBytes(model.X), Causal = true,
        })).Output);

    /// <summary>The seed whose oracle the answer matches within <see cref="Bound"/>, or null (a mix, or garbage).</summary>
    protected static int? Matching(Model model, int layer, float[] y)
    {
        foreach (var (seed, set) in model.Sets)
        {
            var expected = set.Y[layer];
            bool close = expected.Length == y.Length;
            for (int i = 0; close && i < y.Length; i++) close = Math.Abs(y[i] - expected[i]) <= Bound;
            if (close) return seed;
        }
        return null;
    }

    protected async Task AssertServes(Model model, int seed, string when)
    {
        for (int layer = 0; layer < model.Spec.LayerCount; layer++)
            Assert.True(Matching(model, layer, await Forward(model, layer)) == seed, $"{when}: layer {layer} does not answer with weights {seed}.");
    }

    protected async Task<bool> AnyStaged(Model model)
    {
        for (int layer = 0; layer < model.Spec.LayerCount; layer++)
            for (int group = 0; group < model.Spec.GroupCount; group++)
                if ((await _cluster.Client.GetGrain<IHeadGrain>(GrainKeys.Head(model.Name, layer, group)).GetStaged()).Length > 0) return true;
        return false;
    }

    protected async Task AssertNothingStaged(Model model, string when)
    {
        for (int layer = 0; layer < model.Spec.LayerCount; layer++)
            for (int group = 0; group < model.Spec.GroupCount; group++)
                Assert.True((await _cluster.Client.GetGrain<IHeadGrain>(GrainKeys.Head(model.Name, layer, group)).GetStaged()).Length == 0,
                    $"{when}: head {layer}/{group} still holds staged weights.");
    }
}

/// <summary>The uploads of <see cref="WeightVersionCluster"/> under the default lease: a stalled machine does not end them.</summary>
[Collection(WeightVersionCluster.Collection)]
public sealed class WeightVersionTests : WeightVersionCluster
{
    protected override int? UploadLeaseSeconds => null;

    [Fact]
    public async Task Forwards_during_reuploads_of_other_weights_get_the_old_or_the_new_answer_never_a_failure_or_a_mix()
    {
        var model = await CreateModel("switch", 1, 2);
        using var stop = new CancellationTokenSource();
        var answered = new int[3]; // old-or-new per seed index: [seed 1, seed 2, neither]
        var failures = new List<Exception>();
        async Task Load(int layer)
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    var seed = Matching(model, layer, await Forward(model, layer));
                    Interlocked.Increment(ref answered[seed switch { 1 => 0, 2 => 1, _ => 2 }]);
                }
                catch (Exception e)
                {
                    lock (failures) failures.Add(e);
                }
            }
        }
        var loops = new[] { Load(0), Load(1), Load(0) };
        for (int upload = 0; upload < 8; upload++)
        {
            int seed = upload % 2 == 0 ? 2 : 1;
            await WeightUpload.StoreAsync(_cluster.Client, model.Name, model.Sets[seed].Weights);
            // Once the upload has answered, no forward is answered with the weights it replaced.
            await AssertServes(model, seed, $"right after upload {upload}");
        }
        stop.Cancel();
        await Task.WhenAll(loops);

        Assert.True(failures.Count == 0, $"{failures.Count} forwards failed during re-uploads; first: {failures.FirstOrDefault()}");
        Assert.Equal(0, answered[2]);
        Assert.True(answered[0] > 0 && answered[1] > 0, $"answers: {answered[0]} with the first weights, {answered[1]} with the second.");
        await AssertNothingStaged(model, "after eight uploads");
    }

    [Fact]
    public async Task A_storage_write_failing_at_any_write_of_an_upload_leaves_one_complete_version_serving_and_nothing_staged()
    {
        var model = await CreateModel("faulty", 1, 2, 3);
        StorageFaults.Arm(failAt: 0);
        await WeightUpload.StoreAsync(_cluster.Client, model.Name, model.Sets[2].Weights);
        int writes = StorageFaults.Writes;
        Assert.True(writes > 20, $"an upload of 2 layers × 4 groups wrote {writes} times");

        int serving = 2, failed = 0;
        for (int k = 1; k <= writes; k++)
        {
            int next = serving == 2 ? 3 : 2;
            StorageFaults.Arm(failAt: k);
            try
            {
                await WeightUpload.StoreAsync(_cluster.Client, model.Name, model.Sets[next].Weights);
                // Past the catalog's commit a failed write is retried: the upload stands.
                serving = next;
            }
            catch (Exception)
            {
                failed++;
            }
            StorageFaults.Disarm();
            await AssertServes(model, serving, $"write {k} of {writes} failed");
            await AssertNothingStaged(model, $"write {k} of {writes} failed");
        }
        // The failures before the commit were answered as failures, and they are most of the writes.
        Assert.True(failed >= writes / 3, $"{failed} of {writes} uploads failed");
    }

    [Fact]
    public async Task A_caller_that_gives_up_at_any_write_of_an_upload_leaves_one_complete_version_serving_and_nothing_staged()
    {
        var model = await CreateModel("cancelled", 1, 2, 3);
        StorageFaults.Arm(failAt: 0);
        await WeightUpload.StoreAsync(_cluster.Client, model.Name, model.Sets[2].Weights);
        int writes = StorageFaults.Writes;
        int serving = 2;
        for (int k = 1; k <= writes; k += 3)
        {
            int next = serving == 2 ? 3 : 2;
            using var gone = new CancellationTokenSource();
            StorageFaults.Arm(failAt: k, gone);
            try
            {
                await WeightUpload.StoreAsync(_cluster.Client, model.Name, model.Sets[next].Weights, gone.Token);
                serving = next;
            }
            catch (OperationCanceledException)
            {
                // Given up before the commit, or after it: the model serves one of the two, whole, and says which below.
                if (Matching(model, 0, await Forward(model, 0)) == next) serving = next;
            }
            StorageFaults.Disarm();
            await AssertServes(model, serving, $"caller gone at write {k} of {writes}");
            await AssertNothingStaged(model, $"caller gone at write {k} of {writes}");
        }
    }

    [Fact]
    public async Task Two_uploads_at_once_end_equal_to_one_of_them()
    {
        var model = await CreateModel("concurrent", 1, 2, 3);
        for (int round = 0; round < 4; round++)
        {
            await Task.WhenAll(
                WeightUpload.StoreAsync(_cluster.Client, model.Name, model.Sets[2].Weights),
                WeightUpload.StoreAsync(_cluster.Client, model.Name, model.Sets[3].Weights));
            var seed = Matching(model, 0, await Forward(model, 0));
            Assert.True(seed is 2 or 3, $"round {round}: layer 0 answers with neither upload");
            await AssertServes(model, seed!.Value, $"round {round}");
            await AssertNothingStaged(model, $"round {round}");
        }
    }
}

/// <summary>
/// An uploader that vanishes, in a cluster whose upload lease is short (3 s): only this test lives under it, since with a
/// 2 s lease for every upload the other tests' uploads would end whenever the machine stalled between two writes.
/// </summary>
[Collection(WeightVersionCluster.Collection)]
public sealed class WeightUploadLeaseTests : WeightVersionCluster
{
    protected override int? UploadLeaseSeconds => 3;

    [Fact]
    public async Task An_uploader_that_vanishes_mid_upload_leaves_the_old_weights_serving_and_its_staged_weights_go_with_its_lease()
    {
        var model = await CreateModel("vanished", 1, 2);
        var upload = await StagedUpload.BeginAsync(_cluster.Client, model.Name);
        await upload.StageLayerAsync(model.Sets[2].Weights[0]);
        // Gone without a word: no commit, no abort.
        await AssertServes(model, 1, "with layer 0 of another upload staged");
        Assert.NotEmpty(await _cluster.Client.GetGrain<IHeadGrain>(GrainKeys.Head(model.Name, 0, 0)).GetStaged());

        // The layer drops its heads' staged weights in parallel: wait until no head of the model holds any.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline && await AnyStaged(model)) await Task.Delay(250);
        await AssertNothingStaged(model, "after the lease of 3 s");
        var late = await Assert.ThrowsAsync<HeadwiseException>(() => upload.CommitAsync());
        Assert.Equal(ErrorCode.FailedPrecondition, late.Code);
        Assert.Contains("no longer open", late.Message);
        await AssertServes(model, 1, "after the vanished upload's late commit");
    }
}

[CollectionDefinition(WeightVersionCluster.Collection)]
public sealed class WeightVersionCollection;
