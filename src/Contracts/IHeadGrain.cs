namespace Headwise.Contracts;

/// <summary>
/// One attention head group of one layer (key "{model}/{layer}/{group}"). It owns and persists the group's
/// W_Q, W_K, W_V, biases and rows of W_O, and computes the group's Z with the silo's kernel.
/// </summary>
public interface IHeadGrain : IGrainWithStringKey
{
    /// <summary>Stores an upload's weights beside the ones this head serves.</summary>
    Task Stage(Guid upload, AttentionSpec spec, GroupWeights weights);
    /// <summary>Whether the upload's weights are staged here (or already served).</summary>
    [Orleans.Concurrency.ReadOnly]
    Task<bool> HasStaged(Guid upload);
    /// <summary>
    /// Serves the committed upload's weights from now on. The weights served until now stay available to passes
    /// planned with them until <see cref="Retire"/> (or a minute), so a pass under way never fails for the switch.
    /// </summary>
    Task Promote(WeightsVersion version);
    /// <summary>Drops the weights of an upload that was served before the current one.</summary>
    Task Retire(Guid upload);
    /// <summary>Drops an upload's staged weights.</summary>
    Task Abort(Guid upload);
    /// <summary>The uploads staged here and not yet promoted or aborted.</summary>
    [Orleans.Concurrency.ReadOnly]
    Task<Guid[]> GetStaged();
    /// <summary>One decode step of a session: appends the new tokens' K and V to the session's cache and returns their Z.</summary>
    Task<HeadDecodeOutcome> Decode(HeadDecodeWork work);
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
