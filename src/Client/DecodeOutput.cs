namespace Headwise.Client;

/// <summary>An open decode session: pass <see cref="Id"/> to <see cref="IAttentionClient.DecodeAsync(string, FloatTensor, CancellationToken)"/>.</summary>
/// <param name="Id">The session id (32 hex digits).</param>
/// <param name="MaxTokens">Tokens the session may see in all.</param>
public sealed record DecodeSession(string Id, int MaxTokens);

/// <summary>The answer to one decode step.</summary>
public sealed record DecodeOutput
{
    /// <summary>Y of the new tokens, shape [batch, new_tokens, model_dim].</summary>
    public required FloatTensor Output { get; init; }

    /// <summary>Tokens the session has seen, these included.</summary>
    public required int Position { get; init; }

    /// <summary>Head groups whose cache the cluster rebuilt from the session's inputs for this step (a silo left, a cache was evicted).</summary>
    public int ReprefilledGroups { get; init; }

    /// <summary>True when this is the stored answer to a step the session had already applied (a retry with the same expected position and input).</summary>
    public bool Replayed { get; init; }

    /// <summary>W3C trace id of the step.</summary>
    public string TraceId { get; init; } = "";
}
