using Headwise.Contracts;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Decode;

/// <summary>
/// The bytes of session inputs the decode-session coordinators on this silo hold, against
/// <see cref="DecodeSessionOptions.InputBytesPerSilo"/>: a session that would pass it is refused with ResourceExhausted.
/// </summary>
public sealed class SessionBudget(IOptions<DecodeSessionOptions> options)
{
    private long _bytes;

    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Takes <paramref name="bytes"/> more for <paramref name="session"/>, or throws ResourceExhausted naming it.</summary>
    public void Reserve(string session, long bytes)
    {
        if (TryReserve(bytes)) return;
        long cap = options.Value.InputBytesPerSilo;
        throw new HeadwiseException(ErrorCode.ResourceExhausted,
            $"session '{session}': this silo's sessions hold {Bytes} of {cap} bytes of inputs (Headwise__Sessions__InputBytesPerSilo); " +
            "close sessions you no longer need or wait for idle ones to expire.");
    }

    /// <summary>Takes <paramref name="bytes"/> more if they fit under the cap; false, and nothing taken, if not.</summary>
    public bool TryReserve(long bytes)
    {
        if (Interlocked.Add(ref _bytes, bytes) <= options.Value.InputBytesPerSilo) return true;
        Interlocked.Add(ref _bytes, -bytes);
        return false;
    }

    public void Release(long bytes) => Interlocked.Add(ref _bytes, -bytes);
}
