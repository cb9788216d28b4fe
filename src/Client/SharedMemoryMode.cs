namespace Headwise.Client;

/// <summary>
/// Whether <see cref="GrpcAttentionClient"/> passes a forward pass's X and Y through shared memory instead of the gRPC
/// message: for a client on the silo's own machine, where copying 3 MB through HTTP/2 each way costs about as much as
/// the layer itself. The client creates files in <see cref="GrpcAttentionClientOptions.SharedMemoryDirectory"/> (mode
/// 0600), registers them with the silo its channel reaches, and unregisters and deletes them on DisposeAsync.
/// </summary>
public enum SharedMemoryMode
{
    /// <summary>Tensors travel in the gRPC messages (the default).</summary>
    Off,

    /// <summary>Shared memory for every forward pass; a silo that cannot use it (another machine, the feature off, another
    /// /dev/shm) fails the call with its status.</summary>
    On,

    /// <summary>Shared memory when the address is a loopback address (localhost, 127.0.0.0/8, ::1) and the silo accepts
    /// the first registration; inline otherwise, and inline for a call the silo has no region slot for.</summary>
    Auto,
}
