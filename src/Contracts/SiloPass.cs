namespace Headwise.Contracts;

/// <summary>One silo of a pass and the head groups of the layer it is asked to compute.</summary>
[GenerateSerializer, Immutable, Alias("headwise.silo-assignment")]
public sealed record SiloAssignment(
    [property: Id(0)] string Silo,
    [property: Id(1)] int[] Groups);

/// <summary>
/// What a relay receives in a forward pass or a decode step: X once for all its heads, the groups to compute, how to
/// answer, and the silos below it in the broadcast tree (it forwards X to them before it computes, and adds their
/// answers to its own). Exactly one of <see cref="Work"/> (a forward pass) and <see cref="Step"/> (a decode step) is set.
/// </summary>
[GenerateSerializer, Immutable, Alias("headwise.silo-pass")]
public sealed record SiloPassRequest
{
    /// <summary>"{model}/{layer}".</summary>
    [Id(0)] public required string Layer { get; init; }
    [Id(1)] public HeadWork? Work { get; init; }
    /// <summary>This silo's groups.</summary>
    [Id(2)] public required int[] Groups { get; init; }
    [Id(3)] public OutputProjectionMode Mode { get; init; }
    /// <summary>Silos below this one in the tree, in tree order (<c>ScatterTree</c> splits them again).</summary>
    [Id(4)] public SiloAssignment[] Subtree { get; init; } = [];
    /// <summary>Children per node of the tree.</summary>
    [Id(5)] public int Fanout { get; init; } = 4;
    /// <summary>A decode step of a session: each head appends the new rows to its K/V cache and attends over it.</summary>
    [Id(6)] public HeadDecodeWork? Step { get; init; }
    /// <summary>Per group of the layer, the weights version the caller expects (a decode session's); empty: any. A silo
    /// checks it before any head appends to a cache, so a step never mixes two uploads.</summary>
    [Id(7)] public Guid[] Versions { get; init; } = [];
    /// <summary>When set, X did not come in this message: it arrives on the silo's tensor channel under this ticket.</summary>
    [Id(8)] public Guid InputTicket { get; init; }
    /// <summary>The sender's tensor channel ("ip:port"): a large partial sum goes back there, the answer naming its ticket.</summary>
    [Id(9)] public string ReplyChannel { get; init; } = "";
    /// <summary>The sender's tensor channel's shared-memory marker, when it has one: a receiver on the same host that sees
    /// it sends the partial sum back through shared memory.</summary>
    [Id(10)] public string ReplyMarker { get; init; } = "";
    /// <summary>The ticket a partial sum sent back on the channel goes under, chosen by the sender so it can claim the
    /// partial as it arrives (a relay adds it to its own block by block); empty: the receiver picks one.</summary>
    [Id(11)] public Guid ReplyTicket { get; init; }
    /// <summary>Rows per piece of X for a forward pass that arrives on the tensor channel, chosen by the coordinator for the
    /// whole tree; 0: computed whole once X is in.</summary>
    [Id(12)] public int PieceRows { get; init; }
}

/// <summary>One head group's part of a silo's answer.</summary>
[GenerateSerializer, Immutable, Alias("headwise.group-answer")]
public sealed record GroupAnswer
{
    [Id(0)] public required int Group { get; init; }
    /// <summary>The weights version the group computed with: Q, K, V and its rows of W_O all belong to it.</summary>
    [Id(1)] public required Guid Version { get; init; }
    [Id(2)] public required string Silo { get; init; }
    [Id(3)] public required string Kernel { get; init; }
    [Id(4)] public double ComputeMs { get; init; }
    /// <summary>Milliseconds from the relay's receipt of the request to the head's start (waiting for a core).</summary>
    [Id(5)] public double QueueMs { get; init; }
    /// <summary>Z [B, T, g·dh] (in the request's wire format) when the pass gathers Z; else null.</summary>
    [Id(6)] public byte[]? Output { get; init; }
    /// <summary>[B, g, T, T] float32 bytes, when asked for.</summary>
    [Id(7)] public byte[]? Attention { get; init; }
    /// <summary>Milliseconds of the call that brought this answer, as its parent saw it (the coordinator's view at the root).</summary>
    [Id(8)] public double CallMs { get; init; }
    /// <summary>How <see cref="Output"/> is encoded.</summary>
    [Id(9)] public WireFormat Wire { get; init; }
    /// <summary>Decode: the head holds no cache at the step's position (evicted, or its silo was lost), so it computed
    /// nothing and its share is not in the partial sum; the session re-fills it.</summary>
    [Id(10)] public bool NoCache { get; init; }
    /// <summary>Forward: the pieces of rows the group was computed in as X arrived on the tensor channel; 0: all at once.</summary>
    [Id(11)] public int Pieces { get; init; }
}

/// <summary>
/// A silo's answer, its subtree's added in: the partial sum Σ Z_h·W_O[h rows] over every group it computed (without b_O),
/// each group's report, and the groups it could not compute because they are active elsewhere (with where).
/// </summary>
[GenerateSerializer, Immutable, Alias("headwise.silo-answer")]
public sealed record SiloPassAnswer
{
    /// <summary>[B·T, D] in the request's wire format, or null when the pass gathers Z or no group was computed.</summary>
    [Id(0)] public byte[]? Partial { get; init; }
    [Id(1)] public required GroupAnswer[] Groups { get; init; }
    [Id(2)] public SiloAssignment[] Moved { get; init; } = [];
    /// <summary>Silos of the subtree that answered, this one included, with the bytes each received and sent back.</summary>
    [Id(3)] public SiloTraffic[] Traffic { get; init; } = [];
    /// <summary>Milliseconds this silo spent on its own W_O rows (0 when gathering).</summary>
    [Id(4)] public double ProjectionMs { get; init; }
    /// <summary>Relay messages sent in this subtree, this silo's to its children included.</summary>
    [Id(5)] public int Messages { get; init; }
    /// <summary>When set, <see cref="Partial"/> travels on the requester's tensor channel under this ticket.</summary>
    [Id(6)] public Guid PartialTicket { get; init; }
}
