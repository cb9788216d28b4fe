namespace Headwise.Contracts;

/// <summary>
/// One per silo (key: the silo's endpoint, "127.0.0.1:11111"), placed on that silo. The coordinator sends it X
/// once; it calls the heads that live on its silo with the same buffer, so X crosses the network once per silo
/// instead of once per head.
/// </summary>
public interface ISiloRelayGrain : IGrainWithStringKey
{
    /// <summary>
    /// This silo's part of a forward pass: X on to the silos below it in the tree first, then its own head groups on its
    /// compute threads, their partial sum of W_O (or their Z), and the answers from below added in.
    /// </summary>
    Task<SiloPassAnswer> Forward(SiloPassRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// One decode step of this silo's heads of a session: those active here are computed in-process, any other is
    /// called by its grain. An outcome without output means that head holds no cache at the step's position.
    /// </summary>
    /// <param name="headKeys">Keys of head grains last seen on this silo.</param>
    Task<HeadDecodeOutcome[]> Decode(HeadDecodeWork work, string[] headKeys);

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
}
