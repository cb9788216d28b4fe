namespace Headwise.Contracts;

/// <summary>
/// One shard of the cluster's list of open decode sessions (key: <see cref="SessionIndex.ShardOf"/> of the session id).
/// A session's coordinator ends it once it is idle; a session whose coordinator is gone (its silo died) and whose caller
/// never comes back has no one to do that, and its record and stored inputs would stay in storage for good. Every silo
/// sweeps the shards now and then: each listed session old enough to be idle is asked to end itself if it is.
/// </summary>
public interface ISessionIndexGrain : IGrainWithIntegerKey
{
    /// <summary>Lists <paramref name="session"/>, opened now (before its record is written: a listed id without a record is dropped by the next sweep).</summary>
    Task Add(string session);

    /// <summary>Drops <paramref name="session"/> from the list (ended, or never opened).</summary>
    Task Remove(string session);

    /// <summary>
    /// The listed sessions opened more than <paramref name="idleSeconds"/> ago, for a sweep; none when another silo
    /// began a sweep of this shard less than <paramref name="sweepSeconds"/> ago.
    /// </summary>
    Task<string[]> SweepCandidates(int idleSeconds, double sweepSeconds);
}

/// <summary>Which shard of the session index lists a session.</summary>
public static class SessionIndex
{
    /// <summary>Shards of the index: a shard's list is rewritten whole on every open and end of a session it holds.</summary>
    public const int Shards = 16;

    /// <summary>The shard of <paramref name="session"/>: the same on every silo and every run (FNV-1a of its UTF-16 code units).</summary>
    public static int ShardOf(string session)
    {
        uint hash = 2166136261;
        foreach (char c in session) hash = (hash ^ c) * 16777619;
        return (int)(hash % Shards);
    }
}
