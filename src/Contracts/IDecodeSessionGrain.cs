namespace Headwise.Contracts;

/// <summary>
/// One decode session of one layer (key: the session id). It is the session's coordinator: it keeps the inputs the
/// session has seen (so heads that lost their cache are re-filled), sends each step's new tokens to the layer's head
/// grains, which keep K and V per session, and applies W_O to their Z.
/// </summary>
public interface IDecodeSessionGrain : IGrainWithStringKey
{
    /// <summary>Starts the session on layer <paramref name="layer"/> of <paramref name="model"/>; maxTokens 0: the silo's default.</summary>
    Task<SessionInfo> Open(string model, int layer, int maxTokens);
    /// <summary>
    /// Attention for the new tokens, causal over every token the session has seen. NotFound once the session is gone;
    /// FailedPrecondition when <see cref="DecodeCommand.ExpectedPosition"/> is not the session's position.
    /// </summary>
    Task<DecodeResult> Decode(DecodeCommand command);
    /// <summary>Ends the session and frees its caches. NotFound when it is already gone.</summary>
    Task Close();
    /// <summary>
    /// For the session index's sweep (<see cref="ISessionIndexGrain"/>): ends the session if it has been idle past the
    /// silo's idle limit and no activation coordinates it; a session that is gone leaves the index.
    /// </summary>
    Task EndIfIdle();
}

/// <summary>An open session.</summary>
[GenerateSerializer, Immutable, Alias("headwise.session-info")]
public sealed record SessionInfo
{
    [Id(0)] public required string Session { get; init; }
    [Id(1)] public required int MaxTokens { get; init; }
}

/// <summary>One decode step: the new tokens of every sequence of the session's batch.</summary>
[GenerateSerializer, Immutable, Alias("headwise.decode-command")]
public sealed record DecodeCommand
{
    /// <summary>B: sequences; fixed by the session's first step.</summary>
    [Id(0)] public required int Batch { get; init; }
    /// <summary>New tokens per sequence.</summary>
    [Id(1)] public required int Tokens { get; init; }
    /// <summary>D as the caller shaped X.</summary>
    [Id(2)] public required int ModelDim { get; init; }
    /// <summary>X of the new tokens: [B, tokens, D] float32 bytes.</summary>
    [Id(3)] public required byte[] Input { get; init; }
    /// <summary>
    /// The position the caller believes the session is at before this step, or null to apply the step wherever the
    /// session is. With it a step is applied at most once: a retry of the session's last step (same expected position,
    /// same input) gets the stored answer back (<see cref="DecodeResult.Replayed"/>); any other mismatch is
    /// FailedPrecondition naming both positions.
    /// </summary>
    [Id(4)] public int? ExpectedPosition { get; init; }
}

/// <summary>The outputs of the new tokens.</summary>
[GenerateSerializer, Immutable, Alias("headwise.decode-result")]
public sealed record DecodeResult
{
    /// <summary>Y: [B, tokens, D] float32 bytes.</summary>
    [Id(0)] public required byte[] Output { get; init; }
    [Id(1)] public required int ModelDim { get; init; }
    /// <summary>Tokens the session has seen, these included.</summary>
    [Id(2)] public required int Position { get; init; }
    /// <summary>Head groups whose cache was rebuilt from the session's inputs (lost silo, evicted cache).</summary>
    [Id(3)] public int ReprefilledGroups { get; init; }
    [Id(4)] public string TraceId { get; init; } = "";
    /// <summary>Head groups computed in-process on the session's own silo rather than called by message.</summary>
    [Id(5)] public int LocalGroups { get; init; }
    /// <summary>Messages the step sent to other silos' relays and heads (re-fills not counted): one per silo once the
    /// session knows where its heads are.</summary>
    [Id(6)] public int RemoteMessages { get; init; }
    /// <summary>True when this is the stored answer to a step already applied (a retry with the same expected position and input).</summary>
    [Id(7)] public bool Replayed { get; init; }
}

/// <summary>The session coordinator's request to one head group.</summary>
[GenerateSerializer, Immutable, Alias("headwise.head-decode-work")]
public sealed record HeadDecodeWork
{
    [Id(0)] public required string Session { get; init; }
    [Id(1)] public required int Batch { get; init; }
    [Id(2)] public required int Tokens { get; init; }
    /// <summary>Absolute position of the first input row.</summary>
    [Id(3)] public required int Position { get; init; }
    /// <summary>X: [B, tokens, D] float32 bytes.</summary>
    [Id(4)] public required byte[] Input { get; init; }
    /// <summary>Start a new cache at <see cref="Position"/> instead of appending to the one held.</summary>
    [Id(5)] public bool Restart { get; init; }
    /// <summary>The session's max_tokens (0: unbounded): a cache never holds room past it, and its silo reserves that much.</summary>
    [Id(6)] public int MaxTokens { get; init; }
    /// <summary>
    /// The session's first step: a silo whose caches cannot take this session's reservation refuses it (ResourceExhausted)
    /// rather than evict live sessions. Re-fills of a session already served are never refused.
    /// </summary>
    [Id(7)] public bool NewSession { get; init; }
}

/// <summary>A head group's answer to a decode step.</summary>
[GenerateSerializer, Immutable, Alias("headwise.head-decode-outcome")]
public sealed record HeadDecodeOutcome
{
    /// <summary>Z: [B, tokens, g·dh] float32 bytes; null when the head holds no cache at the asked position.</summary>
    [Id(0)] public byte[]? Output { get; init; }
    [Id(1)] public required string Silo { get; init; }
    [Id(2)] public double ComputeMs { get; init; }
    /// <summary>The version of the weights that answered (new with every upload of the head's weights).</summary>
    [Id(3)] public Guid WeightsVersion { get; init; }
}

/// <summary>What a session needs from its layer: the resolved spec, W_O and b_O.</summary>
[GenerateSerializer, Immutable, Alias("headwise.layer-projection")]
public sealed record LayerProjection
{
    [Id(0)] public required AttentionSpec Spec { get; init; }
    /// <summary>W_O: [Hq·dh × D] float32 bytes; empty when <see cref="OutputWeightsHeld"/>.</summary>
    [Id(1)] public required byte[] OutputWeights { get; init; }
    /// <summary>b_O: [D] float32 bytes, or null.</summary>
    [Id(2)] public byte[]? OutputBias { get; init; }
    /// <summary>Per group, the version of the weights W_O's rows came from.</summary>
    [Id(3)] public Guid[] HeadVersions { get; init; } = [];
    /// <summary>W_O left out: the caller said it holds W_O of these very <see cref="HeadVersions"/>.</summary>
    [Id(4)] public bool OutputWeightsHeld { get; init; }
}
