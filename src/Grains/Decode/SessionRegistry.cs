using System.Diagnostics;
using Headwise.Contracts;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Decode;

/// <summary>
/// The decode sessions whose coordinator runs on this silo, by session id. The state lives here rather than in the
/// <see cref="DecodeSessionGrain"/>'s fields because Orleans deactivates an activation whose grain-directory entry
/// was held by a silo that died: the next call re-activates the session grain on this silo (it is placed where it is
/// called from, the gateway's silo) and it finds its session again. Sessions idle past the limit are removed here.
/// </summary>
public sealed class SessionRegistry(IOptions<DecodeSessionOptions> options)
{
    private readonly Dictionary<string, DecodeSessionState> _sessions = [];
    private readonly Lock _lock = new();

    public DecodeSessionState? Find(string id)
    {
        lock (_lock) return _sessions.GetValueOrDefault(id);
    }

    /// <summary>Adds a session; AlreadyExists when the id is taken, ResourceExhausted when the silo holds its most.</summary>
    public void Add(string id, DecodeSessionState session)
    {
        lock (_lock)
        {
            int max = options.Value.MaxOpenPerSilo;
            if (_sessions.Count >= max)
                throw new HeadwiseException(ErrorCode.ResourceExhausted,
                    $"this silo has {_sessions.Count} open sessions, its most (Headwise__Sessions__MaxOpenPerSilo = {max}); " +
                    "close sessions you no longer need or wait for idle ones to expire.");
            if (!_sessions.TryAdd(id, session))
                throw new HeadwiseException(ErrorCode.AlreadyExists, $"session '{id}' is already open.");
        }
    }

    public DecodeSessionState? Remove(string id)
    {
        lock (_lock) return _sessions.Remove(id, out var session) ? session : null;
    }

    /// <summary>Removes and returns the sessions unused for longer than <paramref name="idle"/>.</summary>
    public List<(string Id, DecodeSessionState Session)> RemoveIdle(TimeSpan idle)
    {
        lock (_lock)
        {
            var expired = _sessions.Where(s => Stopwatch.GetElapsedTime(s.Value.LastUse) > idle).Select(s => (s.Key, s.Value)).ToList();
            foreach (var (id, _) in expired) _sessions.Remove(id);
            return expired;
        }
    }
}

/// <summary>What a decode session's coordinator keeps: the layer's spec, W_O and b_O, and the inputs seen.</summary>
public sealed class DecodeSessionState
{
    public required string Model { get; init; }
    public required int Layer { get; init; }
    public required int MaxTokens { get; init; }
    public required AttentionSpec Spec { get; init; }
    /// <summary>W_O, b_O and the weights versions the session opened with, shared with the silo's other sessions of the layer.</summary>
    public required SharedProjection Projection { get; init; }
    /// <summary>Sequences; 0 until the first step.</summary>
    public int Batch { get; set; }
    /// <summary>Tokens seen.</summary>
    public int Position { get; set; }
    /// <summary>Absolute position of the first kept input row.</summary>
    public int HistoryStart { get; set; }
    /// <summary>Per sequence: [kept tokens × D], grown by doubling; rows past Position belong to a step under way.</summary>
    public List<float[]> History { get; set; } = [];
    public long ReservedBytes { get; set; }
    /// <summary>Per group, the silo its head answered from last ("" until known): the step sends one message per silo.</summary>
    public string[] HeadSilos { get; set; } = [];
    public long LastUse { get; set; } = Stopwatch.GetTimestamp();
}
