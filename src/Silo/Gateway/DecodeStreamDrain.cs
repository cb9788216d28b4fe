namespace Headwise.Silo.Gateway;

/// <summary>
/// Ends open DecodeStreams when a stopping silo's drain time is over. A stream lives as long as its client steps it, so
/// without this Kestrel would wait out the host's whole shutdown timeout for it and then abort it mid-step. Ended here,
/// each stream finishes the step it is running, answers it, and closes with UNAVAILABLE naming the position to go on
/// from: the client reopens on another gateway and loses no step.
/// </summary>
public sealed class DecodeStreamDrain : IDisposable
{
    private readonly CancellationTokenSource _ending = new();

    /// <summary>Signalled once the silo stops serving: no stream waits for a further step after it.</summary>
    public CancellationToken Ending => _ending.Token;

    public void End() => _ending.Cancel();

    public void Dispose() => _ending.Dispose();
}
