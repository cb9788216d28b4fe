using System.Collections.Concurrent;
using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Grains.Decode;
using Orleans.Storage;

namespace Headwise.Silo.Gateway;

/// <summary>
/// The decode sessions this gateway knows to exist: those it opened and those whose record it found in grain storage.
/// A Decode or CloseSession with an id it does not know reads the session's record first, which activates no grain, and
/// answers NOT_FOUND when there is none: a flood of made-up well-formed ids would otherwise activate a session grain per
/// id. A session closed through another gateway stays known here; its grain then answers NOT_FOUND itself.
/// </summary>
internal sealed class KnownSessions(IGrainFactory grains, IServiceProvider services)
{
    /// <summary>Past this many, the set starts again empty (each forgotten live session costs one storage read).</summary>
    public const int MaxKnown = 100_000;

    private readonly ConcurrentDictionary<string, byte> _known = new(StringComparer.Ordinal);

    public void Opened(string grainKey) => Remember(grainKey);

    public void Closed(string grainKey) => _known.TryRemove(grainKey, out _);

    /// <summary>Returns when the session exists (or this gateway has seen it); NOT_FOUND otherwise.</summary>
    public async ValueTask Require(string grainKey)
    {
        if (_known.ContainsKey(grainKey)) return;
        var storage = services.GetRequiredKeyedService<IGrainStorage>(StorageNames.Weights);
        var stored = new GrainState<SessionRecord>(new SessionRecord());
        try
        {
            await storage.ReadStateAsync(DecodeSessionGrain.RecordStateName, grains.GetGrain<IDecodeSessionGrain>(grainKey).GetGrainId(), stored);
        }
        catch (Exception e) when (e is not HeadwiseException)
        {
            throw new HeadwiseException(ErrorCode.Unavailable, "the session store could not be read right now; retry.", e);
        }
        if (!stored.RecordExists)
            throw new HeadwiseException(ErrorCode.NotFound,
                $"session '{grainKey}' not found: it was closed, expired, or never opened; open a new session.");
        Remember(grainKey);
    }

    private void Remember(string grainKey)
    {
        if (_known.Count >= MaxKnown) _known.Clear();
        _known.TryAdd(grainKey, 0);
    }
}
