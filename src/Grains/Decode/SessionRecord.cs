namespace Headwise.Grains.Decode;

/// <summary>
/// What a decode session persists besides its inputs (<see cref="SessionInputs"/>), written before each step's answer
/// is returned: enough for any silo to rebuild the session's coordinator after its silo died. The K/V caches are not
/// kept: a rebuilt coordinator re-fills the heads that lost theirs from the stored inputs.
/// </summary>
[GenerateSerializer, Immutable, Alias("headwise.session-record")]
public sealed record SessionRecord
{
    [Id(0)] public string Model { get; init; } = "";
    [Id(1)] public int Layer { get; init; }
    [Id(2)] public int MaxTokens { get; init; }
    /// <summary>Per group, the weights versions the session opened with: a rebuild on other weights is an error.</summary>
    [Id(3)] public Guid[] HeadVersions { get; init; } = [];
    /// <summary>Sequences; 0 until the first step.</summary>
    [Id(4)] public int Batch { get; init; }
    /// <summary>Tokens applied and acknowledged.</summary>
    [Id(5)] public int Position { get; init; }
    /// <summary>Tokens per stored input segment; fixed by the first step (0 before).</summary>
    [Id(6)] public int SegmentTokens { get; init; }
    /// <summary>When the session was last used, so a session whose coordinator died still expires when idle.</summary>
    [Id(7)] public DateTime LastUseUtc { get; init; }
    /// <summary>The last applied step, so its retry is answered rather than applied twice.</summary>
    [Id(8)] public SessionStepRecord? LastStep { get; init; }
    /// <summary>D of the stored inputs.</summary>
    [Id(9)] public int ModelDim { get; init; }
    /// <summary>First positions of the acknowledged input pieces of the open segment, slot by slot (<see cref="SessionInputs"/>).</summary>
    [Id(10)] public int[] InputTail { get; init; } = [];
    /// <summary>The most pieces the record has listed at once: the tail slots a Close clears (and the one after).</summary>
    [Id(11)] public int InputTailSlots { get; init; }
    /// <summary>
    /// One past the last input segment a step of the session began to write (<see cref="SessionInputs.SegmentsEnd"/>),
    /// acknowledged or not: a Close deletes up to here, so the rows of a failed long step are not left in storage.
    /// </summary>
    [Id(12)] public int InputSegmentsEnd { get; init; }
}

/// <summary>One applied step: where it started, a digest of its input and, when it came with an expected position, its answer.</summary>
[GenerateSerializer, Immutable, Alias("headwise.session-step-record")]
public sealed record SessionStepRecord
{
    [Id(0)] public required int Before { get; init; }
    [Id(1)] public required int Tokens { get; init; }
    /// <summary>SHA-256 of the step's batch, tokens and X bytes.</summary>
    [Id(2)] public required byte[] InputDigest { get; init; }
    /// <summary>Y of the step, kept only for steps that carried an expected position (the only ones a retry can match).</summary>
    [Id(3)] public byte[]? Output { get; init; }
    [Id(4)] public int ModelDim { get; init; }
}

/// <summary>
/// One stored segment of a session's inputs: tokens [index · S, index · S + S) of every sequence, [B, S, D] float32
/// bytes (rows past the session's position are not yet acknowledged and are ignored).
/// </summary>
[GenerateSerializer, Alias("headwise.session-input-segment")]
public sealed class SessionInputSegment
{
    [Id(0)] public byte[] Rows { get; set; } = [];
}

/// <summary>
/// The rows one step stored of a segment it left incomplete: tokens [Start, Start + Tokens) of every sequence,
/// [B, Tokens, D] float32 bytes. Valid only while the session's record lists its slot (<see cref="SessionRecord.InputTail"/>).
/// </summary>
[GenerateSerializer, Alias("headwise.session-input-piece")]
public sealed class SessionInputPiece
{
    [Id(0)] public int Start { get; set; }
    [Id(1)] public int Tokens { get; set; }
    [Id(2)] public byte[] Rows { get; set; } = [];
}
