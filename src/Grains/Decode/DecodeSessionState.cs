using System.Diagnostics;
using Headwise.Contracts;

namespace Headwise.Grains.Decode;

/// <summary>
/// What a decode session's coordinator holds in memory while it is active: the layer's spec, W_O and b_O, and the
/// inputs seen (rebuilt from <see cref="SessionRecord"/> and <see cref="SessionInputs"/> when it activates elsewhere).
/// </summary>
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
