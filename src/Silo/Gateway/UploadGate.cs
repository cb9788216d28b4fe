using Headwise.Contracts;
using Microsoft.Extensions.Options;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Uploads under way on this gateway, at most Headwise__MaxConcurrentUploads: each holds up to a layer's attention
/// weights while it is staged, so their number bounds the memory uploads take. One more is RESOURCE_EXHAUSTED at once.
/// </summary>
public sealed class UploadGate(IOptions<SiloOptions> options)
{
    private readonly SemaphoreSlim _slots = new(Math.Max(1, options.Value.MaxConcurrentUploads));

    public IDisposable Enter()
    {
        if (!_slots.Wait(0))
            throw new HeadwiseException(ErrorCode.ResourceExhausted,
                $"uploads: {Math.Max(1, options.Value.MaxConcurrentUploads)} are under way on this gateway (Headwise__MaxConcurrentUploads); try again when one has finished.");
        return new Slot(_slots);
    }

    private sealed class Slot(SemaphoreSlim slots) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) slots.Release();
        }
    }
}
