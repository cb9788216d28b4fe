using System.Collections.Concurrent;
using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Kernels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Storage;

namespace Headwise.Grains.Forward;

/// <summary>
/// Lets a silo compute head groups whose own silo is lost or hung, so that the pass it is part of does not wait for
/// membership to declare that silo dead (seconds) or for Orleans' response timeout (30 s). The weights come straight
/// from grain storage, the same bytes the head grain would read on its next activation, checked against the version
/// the pass was planned with. A silo that failed or fell behind is suspected for a while: passes in that time compute
/// its groups at once instead of asking it first (and, if it is hung, stacking up calls and sends to it).
/// </summary>
public sealed class HeadRescue(IServiceProvider services, IGrainFactory grains, IHeadKernel kernel, IOptions<ScatterOptions> options)
{
    private static readonly TimeSpan KeepWeights = TimeSpan.FromMinutes(1);

    private sealed record Rescued(Guid Version, Task<LocalHead> Head, long LastUsed);

    private readonly ConcurrentDictionary<string, Rescued> _heads = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, LocalHead> _loaded = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _suspects = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, double> _passMs = new(StringComparer.Ordinal);

    public long Rescues;

    /// <summary>How long a silo below may take before its groups are computed here too: 4× this layer's recent passes
    /// on this silo, and never less than Headwise__HedgeAfterMs. (The caller also waits for its own heads first, and as
    /// long again: a silo slowed down with the rest of the machine is not mistaken for a hung one.)</summary>
    public TimeSpan HedgeAfter(string layer) =>
        TimeSpan.FromMilliseconds(Math.Max(options.Value.HedgeAfterMs, 4 * _passMs.GetValueOrDefault(layer)));

    /// <summary>Records how long a pass of the layer took here, for <see cref="HedgeAfter"/>.</summary>
    public void Passed(string layer, TimeSpan elapsed) =>
        _passMs.AddOrUpdate(layer, elapsed.TotalMilliseconds, (_, old) => 0.8 * old + 0.2 * elapsed.TotalMilliseconds);

    public bool IsSuspect(string silo) =>
        _suspects.TryGetValue(silo, out long until) && Stopwatch.GetTimestamp() < until;

    /// <summary>Passes compute the silo's groups here for the next <c>Headwise__SuspectSeconds</c> without asking it.</summary>
    public void Suspect(string silo) =>
        _suspects[silo] = Stopwatch.GetTimestamp() + (long)(options.Value.SuspectSeconds * Stopwatch.Frequency);

    public void Clear(string silo) => _suspects.TryRemove(silo, out _);

    /// <summary>The group's weights of <paramref name="version"/> when this silo has read them already (and keeps them).</summary>
    public bool TryGetLoaded(string key, Guid version, out LocalHead head)
    {
        if (_heads.TryGetValue(key, out var kept) && kept.Version == version && kept.Head.IsCompletedSuccessfully
            && _loaded.TryGetValue(key, out var loaded) && loaded.Version == version)
        {
            _heads.TryUpdate(key, kept with { LastUsed = Stopwatch.GetTimestamp() }, kept);
            head = loaded;
            return true;
        }
        head = null!;
        return false;
    }

    /// <summary>The group's weights of <paramref name="version"/>, read from storage (kept a minute for the next pass).
    /// One read per head however many passes ask at once: a hung silo's groups are wanted by every pass.</summary>
    public Task<LocalHead> Load(string key, Guid version)
    {
        long now = Stopwatch.GetTimestamp();
        foreach (var old in _heads.Where(h => Stopwatch.GetElapsedTime(h.Value.LastUsed) > KeepWeights).ToList())
        {
            _heads.TryRemove(old);
            _loaded.TryRemove(old.Key, out _);
        }
        while (true)
        {
            if (_heads.TryGetValue(key, out var kept) && kept.Version == version && !kept.Head.IsFaulted && !kept.Head.IsCanceled)
            {
                _heads.TryUpdate(key, kept with { LastUsed = now }, kept);
                return kept.Head;
            }
            var loading = new Rescued(version, Read(key, version), now);
            if (kept is null ? _heads.TryAdd(key, loading) : _heads.TryUpdate(key, loading, kept)) return loading.Head;
        }
    }

    private async Task<LocalHead> Read(string key, Guid version)
    {
        await Task.Yield();
        var storage = services.GetRequiredKeyedService<IGrainStorage>(StorageNames.Weights);
        var stored = new GrainState<HeadState>(new HeadState());
        try
        {
            await storage.ReadStateAsync(HeadGrain.StateName, grains.GetGrain<IHeadGrain>(key).GetGrainId(), stored);
        }
        catch (Exception e)
        {
            throw new HeadwiseException(ErrorCode.Unavailable, $"head '{key}' is on a silo that does not answer, and reading its weights failed; retry.", e);
        }
        if (stored.State is not { Spec: { } spec, Weights: { } weights } || stored.State.Version != version)
            throw new HeadwiseException(ErrorCode.Unavailable,
                $"head '{key}' is on a silo that does not answer, and storage holds other weights than the pass was planned with; retry.");
        var kernelWeights = HeadWeightsConverter.ToKernelWeights(spec, weights);
        kernel.Prepare(kernelWeights);
        Interlocked.Increment(ref Rescues);
        var head = new LocalHead(spec, kernelWeights, FloatBytes.ToFloats(weights.Output), version);
        _loaded[key] = head;
        return head;
    }
}
