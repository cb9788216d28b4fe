namespace Headwise.Contracts;

/// <summary>
/// One attention head group of one layer (key "{model}/{layer}/{group}"). It owns and persists the group's
/// W_Q, W_K, W_V, biases and rows of W_O, and computes the group's Z with the silo's kernel.
/// </summary>
public interface IHeadGrain : IGrainWithStringKey
{
    Task Store(AttentionSpec spec, GroupWeights weights);
    /// <summary>One decode step of a session: appends the new tokens' K and V to the session's cache and returns their Z.</summary>
    Task<HeadDecodeOutcome> Decode(HeadDecodeWork work);
    /// <summary>Forgets the session's cache on this head.</summary>
    Task DropSession(string session);
    /// <summary>The group's rows of W_O: [g·dh × D] float32 bytes.</summary>
    Task<OutputRows> GetOutputRows();
    /// <summary>Where this head is active and the version of its weights (activating it where placement says).</summary>
    Task<HeadPlacement> Describe();
    /// <summary>The silo this activation runs on.</summary>
    Task<string> GetSilo();
    Task Clear();
}

/// <summary>A head group's rows of W_O, [g·dh × D] float32 bytes, and the version of the weights they belong to.</summary>
[GenerateSerializer, Immutable, Alias("headwise.output-rows")]
public sealed record OutputRows(
    [property: Id(0)] byte[] Rows,
    [property: Id(1)] Guid WeightsVersion);

/// <summary>The silo a head group is active on and the version of the weights it serves.</summary>
[GenerateSerializer, Immutable, Alias("headwise.head-placement")]
public sealed record HeadPlacement(
    [property: Id(0)] string Silo,
    [property: Id(1)] Guid Version);
