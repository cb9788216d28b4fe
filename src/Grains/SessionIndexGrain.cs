using Headwise.Contracts;

namespace Headwise.Grains;

/// <summary>
/// One shard of the list of open decode sessions (<see cref="ISessionIndexGrain"/>). Its turns are short: the sweep
/// itself (<see cref="Decode.SessionSweeper"/>) calls the sessions from outside, so an Open never waits behind it.
/// </summary>
public sealed class SessionIndexGrain(
    [PersistentState("session-index", StorageNames.Weights)] IPersistentState<SessionIndexState> index) : Grain, ISessionIndexGrain
{
    private DateTime _sweepBegan = DateTime.MinValue;

    public async Task Add(string session)
    {
        index.State.Opened[session] = DateTime.UtcNow;
        await index.WriteStateAsync();
    }

    public async Task Remove(string session)
    {
        if (index.State.Opened.Remove(session)) await index.WriteStateAsync();
    }

    public Task<string[]> SweepCandidates(int idleSeconds, double sweepSeconds)
    {
        var now = DateTime.UtcNow;
        // Every silo sweeps every shard: one of them at a time does the work.
        if ((now - _sweepBegan).TotalSeconds < sweepSeconds) return Task.FromResult<string[]>([]);
        _sweepBegan = now;
        return Task.FromResult(index.State.Opened
            .Where(entry => (now - entry.Value).TotalSeconds > idleSeconds)
            .Select(entry => entry.Key)
            .ToArray());
    }
}
