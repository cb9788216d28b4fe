namespace Headwise.Contracts;

/// <summary>
/// The coordinator of forward passes of one layer (key "{model}/{layer}"), activated on whichever silo the call
/// reached: the gRPC gateway's own silo, or the gateway an Orleans client is connected to. X therefore crosses the
/// network once, to the silos of the layer's heads, never to a coordinator elsewhere and back. It holds no state of
/// its own: the layer's spec, b_O and weights versions come from <see cref="ILayerGrain"/> and are cached per silo.
/// </summary>
public interface IForwardCoordinatorGrain : IGrainWithStringKey
{
    /// <summary>One forward pass: Y = Concat(Z_1..Z_h)·W_O + b_O for X [B, T, D].</summary>
    /// <remarks>Cancelling <paramref name="cancellationToken"/> (the caller's deadline) calls the pass off on every
    /// silo; heads stop at their next sequence.</remarks>
    Task<ForwardResult> Forward(ForwardCommand command, CancellationToken cancellationToken = default);
}
