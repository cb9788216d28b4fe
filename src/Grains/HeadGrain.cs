using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Headwise.Kernels;
using Microsoft.Extensions.DependencyInjection;

namespace Headwise.Grains;

/// <summary>
/// One key/value head group of one layer: it owns and persists the group's weights and publishes them, kernel-ready, to
/// its silo (<see cref="LocalHeads"/>), where forward passes and decode steps compute it in-process (<see cref="SiloPass"/>).
/// Its own methods serve loads, placement (<see cref="Describe"/>), and decode re-fills.
/// </summary>
[SpreadHeadsPlacement]
// Idle for a day before Orleans collects it (delete clears it, re-balancing migrates it): passes and steps computed
// in-process send it no message, and the default quarter of an hour would withdraw its weights from LocalHeads in the
// middle of a session (its next step then reloads them from storage).
[CollectionAgeLimit(Days = 1)]
public sealed class HeadGrain(
    [PersistentState(HeadGrain.StateName, StorageNames.Weights)] IPersistentState<HeadState> state,
    [PersistentState("head-staging", StorageNames.Weights)] IPersistentState<HeadStaging> staging,
    IHeadKernel kernel,
    LocalHeads localHeads,
    SiloIdentity silo) : Grain, IHeadGrain
{
    /// <summary>The name its served weights are stored under (<see cref="Forward.HeadRescue"/> reads them there too).</summary>
    public const string StateName = "head";

    // Floats are rebuilt once per activation so the forward path reads them without conversion.
    private HeadGroupWeights? _weights;
    private LocalHead? _published;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (state.State.Spec is { } spec && state.State.Weights is { } weights)
        {
            _weights = HeadWeightsConverter.ToKernelWeights(spec, weights);
            // Pack W_Q, W_K, W_V once per activation rather than on the first pass (the GPU kernel uploads them).
            kernel.Prepare(_weights);
            Publish(spec, _weights, weights, state.State.Version);
        }
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        Withdraw();
        return Task.CompletedTask;
    }

    // Passes and decode steps on this silo compute this head in-process while it is active here.
    private void Publish(AttentionSpec spec, HeadGroupWeights weights, GroupWeights stored, Guid version, bool keepPrevious = false)
    {
        var head = new LocalHead(spec, weights, FloatBytes.ToFloats(stored.Output), version);
        localHeads.Publish(this.GetPrimaryKeyString(), head, keepPrevious);
        _published = head;
    }

    private void Withdraw()
    {
        if (_published is null) return;
        // Withdrawing the current weights withdraws the previous ones kept with them.
        localHeads.Withdraw(this.GetPrimaryKeyString(), _published);
        _published = null;
    }

    public async Task Stage(Guid upload, AttentionSpec spec, GroupWeights weights)
    {
        // Converting checks every block's size: a malformed group fails here, before anything is stored.
        HeadWeightsConverter.ToKernelWeights(spec, weights);
        var previousSpec = staging.State.Spec;
        staging.State.Spec = spec;
        staging.State.Uploads[upload] = weights;
        try
        {
            await staging.WriteStateAsync();
        }
        catch
        {
            // Not staged: what storage holds is what this activation holds.
            staging.State.Uploads.Remove(upload);
            staging.State.Spec = previousSpec;
            throw;
        }
    }

    public Task<bool> HasStaged(Guid upload) =>
        Task.FromResult(staging.State.Uploads.ContainsKey(upload) || (upload == state.State.Version && state.State.Weights is not null));

    public async Task Promote(WeightsVersion version)
    {
        if (version.Generation <= state.State.Generation && state.State.Weights is not null)
        {
            // Switched already (a retried promotion): only a staged copy a failed clean-up left may remain.
            await DropStaged([version.Upload]);
            return;
        }
        if (!staging.State.Uploads.TryGetValue(version.Upload, out var weights) || staging.State.Spec is not { } spec)
        {
            if (state.State.Version == version.Upload && state.State.Weights is not null) return;
            // Lost (cleared, or storage lost it): no retry brings it back.
            throw new HeadwiseException(ErrorCode.FailedPrecondition,
                $"head '{this.GetPrimaryKeyString()}' has no weights of upload {version.Upload}; upload the model's weights again.");
        }
        var kernelWeights = HeadWeightsConverter.ToKernelWeights(spec, weights);
        var served = (state.State.Spec, state.State.Weights, state.State.Version, state.State.Generation);
        (state.State.Spec, state.State.Weights, state.State.Version, state.State.Generation) = (spec, weights, version.Upload, version.Generation);
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            (state.State.Spec, state.State.Weights, state.State.Version, state.State.Generation) = served;
            throw;
        }
        kernel.Prepare(kernelWeights);
        _weights = kernelWeights;
        Publish(spec, kernelWeights, weights, version.Upload, keepPrevious: true);
        // The layer retires the previous weights once all its heads switched; this is the bound if it never gets to.
        if (served.Version != version.Upload)
            this.RegisterGrainTimer(() => Retire(served.Version), new GrainTimerCreationOptions(RetireAfter, Timeout.InfiniteTimeSpan));
        // The staged copy is served now; other uploads staged here are still under way and keep theirs.
        await DropStaged([version.Upload]);
    }

    private static readonly TimeSpan RetireAfter = TimeSpan.FromMinutes(1);

    public Task Retire(Guid upload)
    {
        localHeads.Retire(this.GetPrimaryKeyString(), upload);
        return Task.CompletedTask;
    }

    public async Task Abort(Guid upload) => await DropStaged([upload]);

    public Task<Guid[]> GetStaged() => Task.FromResult(staging.State.Uploads.Keys.ToArray());

    private async Task DropStaged(Guid[] uploads)
    {
        var removed = uploads.Where(u => staging.State.Uploads.ContainsKey(u)).Select(u => (u, staging.State.Uploads[u])).ToList();
        if (removed.Count == 0) return;
        foreach (var (upload, _) in removed) staging.State.Uploads.Remove(upload);
        try
        {
            if (staging.State.Uploads.Count == 0) await staging.ClearStateAsync();
            else await staging.WriteStateAsync();
        }
        catch
        {
            foreach (var (upload, weights) in removed) staging.State.Uploads[upload] = weights;
            throw;
        }
    }

    public Task<HeadPlacement> Describe() =>
        _published is { } head
            ? Task.FromResult(new HeadPlacement(silo.Name, head.Version))
            : throw new HeadwiseException(ErrorCode.FailedPrecondition, $"head '{this.GetPrimaryKeyString()}' has no weights; upload the model's weights first.");

    public Task<HeadDecodeOutcome> Decode(HeadDecodeWork work)
    {
        if (_weights is null || state.State.Spec is not { } spec)
            throw new HeadwiseException(ErrorCode.FailedPrecondition, $"head '{this.GetPrimaryKeyString()}' has no weights; upload the model's weights first.");
        var caches = ServiceProvider.GetRequiredService<SessionCaches>();
        return Task.FromResult(HeadDecoder.Decode(this.GetPrimaryKeyString(), work, spec, _weights, state.State.Version, kernel, silo.Name, caches));
    }

    public Task<OutputRows> GetOutputRows() =>
        state.State.Weights is { } weights
            ? Task.FromResult(new OutputRows(weights.Output, state.State.Version))
            : throw new HeadwiseException(ErrorCode.FailedPrecondition, $"head '{this.GetPrimaryKeyString()}' has no weights.");

    public Task<string> GetSilo() => Task.FromResult(silo.Name);

    public async Task Clear()
    {
        _weights = null;
        Withdraw();
        await state.ClearStateAsync();
        await staging.ClearStateAsync();
        DeactivateOnIdle();
    }
}
