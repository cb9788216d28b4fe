using Headwise.Contracts;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Decode;

/// <summary>
/// Decode sessions served by coordinators on this silo. A new session past Headwise__Sessions__MaxOpenPerSilo is
/// refused, so that a flood of OpenSession calls cannot grow a silo's sessions without bound; a session rebuilt here
/// after its silo was lost is counted but never refused (it is not new).
/// </summary>
public sealed class OpenSessionCount(IOptions<DecodeSessionOptions> options)
{
    private int _open;

    public void CheckRoom()
    {
        int max = options.Value.MaxOpenPerSilo, open = Volatile.Read(ref _open);
        if (open >= max)
            throw new HeadwiseException(ErrorCode.ResourceExhausted,
                $"this silo has {open} open sessions, its most (Headwise__Sessions__MaxOpenPerSilo = {max}); " +
                "close sessions you no longer need or wait for idle ones to expire.");
    }

    public void Opened() => Interlocked.Increment(ref _open);

    public void Closed() => Interlocked.Decrement(ref _open);
}
