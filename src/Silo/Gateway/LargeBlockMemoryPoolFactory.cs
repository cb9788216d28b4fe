using System.Buffers;
using Microsoft.AspNetCore.Connections;

namespace Headwise.Silo.Gateway;

/// <summary>Gives Kestrel's transports <see cref="LargeBlockMemoryPool"/>s (Kestrel asks DI for this factory).</summary>
public sealed class LargeBlockMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new LargeBlockMemoryPool();
}
