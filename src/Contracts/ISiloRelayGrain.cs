namespace Headwise.Contracts;

/// <summary>
/// One per silo (key: the silo's endpoint, "127.0.0.1:11111"), placed on that silo. A forward pass's or decode step's
/// coordinator sends it X once; it computes the heads active on its silo with that buffer, so X crosses the network
/// once per silo instead of once per head, and answers with one partial sum of their W_O rows.
/// </summary>
public interface ISiloRelayGrain : IGrainWithStringKey
{
    /// <summary>
    /// This silo's part of a forward pass: X on to the silos below it in the tree first, then its own head groups on its
    /// compute threads, their partial sum of W_O (or their Z), and the answers from below added in.
    /// </summary>
    Task<SiloPassAnswer> Forward(SiloPassRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Returns the payload's length: what moving bytes to this silo costs, without any compute
    /// (bench/Headwise.Scaling fits per-message and per-byte costs with it).
    /// </summary>
    Task<int> Echo(byte[] payload);

    /// <summary>
    /// Calls off a forward pass on this silo: its heads stop at their next sequence. The coordinator sends it when
    /// the request's deadline passes or its caller cancels, because a token does not reach a head call already running.
    /// </summary>
    [Orleans.Concurrency.OneWay]
    Task Cancel(Guid forwardId);

    /// <summary>
    /// Drops this silo's K/V caches of a decode session, every head's: its coordinator sends it to every silo when the
    /// session closes or expires, so no cache of a dead session waits out its idle time.
    /// </summary>
    Task DropSessionCaches(string session);

    /// <summary>
    /// Renews the lease of this silo's K/V caches of an open decode session that has been idle a while: its coordinator
    /// sends it, so only the caches of sessions nobody coordinates expire after Headwise__Sessions__CacheLeaseSeconds.
    /// </summary>
    [Orleans.Concurrency.OneWay]
    Task RenewSessionCaches(string session);
}
