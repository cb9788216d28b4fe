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
    [PersistentState("head", StorageNames.Weights)] IPersistentState<HeadState> state,
    IHeadKernel kernel,
    LocalHeads localHeads,
    SiloIdentity silo) : Grain, IHeadGrain
{
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

    // Decode sessions coordinated on this silo compute this head's steps in-process while it is active here.
    private void Publish(AttentionSpec spec, HeadGroupWeights weights, GroupWeights stored, Guid version)
    {
        Withdraw();
        _published = new LocalHead(spec, weights, FloatBytes.ToFloats(stored.Output), version);
        localHeads.Publish(this.GetPrimaryKeyString(), _published);
    }

    private void Withdraw()
    {
        if (_published is null) return;
        localHeads.Withdraw(this.GetPrimaryKeyString(), _published);
        _published = null;
    }

    public async Task Store(AttentionSpec spec, GroupWeights weights)
    {
        var kernelWeights = HeadWeightsConverter.ToKernelWeights(spec, weights);
        var (oldSpec, oldWeights, oldVersion) = (state.State.Spec, state.State.Weights, state.State.Version);
        state.State.Spec = spec;
        state.State.Weights = weights;
        state.State.Version = Guid.NewGuid();
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            // Not stored: this activation goes on answering with what storage still holds.
            (state.State.Spec, state.State.Weights, state.State.Version) = (oldSpec, oldWeights, oldVersion);
            throw;
        }
        kernel.Prepare(kernelWeights);
        _weights = kernelWeights;
        Publish(spec, kernelWeights, weights, state.State.Version);
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

    public Task DropSession(string session)
    {
        ServiceProvider.GetRequiredService<SessionCaches>().Drop(this.GetPrimaryKeyString(), session);
        return Task.CompletedTask;
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
        DeactivateOnIdle();
    }
}
