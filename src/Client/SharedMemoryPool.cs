using System.Collections.Concurrent;
using System.Numerics;
using Grpc.Core;
using Headwise.Contracts;
using Proto = Headwise.V1;

namespace Headwise.Client;

/// <summary>
/// The shared-memory buffers of one <see cref="GrpcAttentionClient"/>, registered with its silo: a forward pass rents
/// one for itself (concurrent passes never share one), and a new one is created and registered when none free is large
/// enough. Buffers are reused because a fresh page's first touch is the expensive part on a virtual machine. A buffer
/// whose call failed is retired, not reused: the silo might still write that call's Y into it.
/// </summary>
internal sealed class SharedMemoryPool(Proto.Attention.AttentionClient client, string directory, bool fallBackInline) : IAsyncDisposable
{
    private const long MinimumBytes = 1 << 20;
    private static readonly TimeSpan RegistrationDeadline = TimeSpan.FromSeconds(10);
    private readonly ConcurrentBag<SharedMemoryBuffer> _free = [];
    private readonly ConcurrentDictionary<SharedMemoryBuffer, byte> _all = new();
    private volatile bool _unusable;
    private volatile bool _disposed;

    /// <summary>A registered buffer of at least <paramref name="byteSize"/> bytes; null when the silo cannot take one and
    /// this pool falls back to inline tensors (<see cref="SharedMemoryMode.Auto"/>).</summary>
    public async Task<SharedMemoryBuffer?> RentAsync(long byteSize, CancellationToken cancellationToken)
    {
        if (_unusable || _disposed) return null;
        while (_free.TryTake(out var buffer))
        {
            if (buffer.ByteSize >= byteSize) return buffer;
            await RetireAsync(buffer);
        }
        return await CreateAsync(byteSize, cancellationToken);
    }

    /// <summary>Gives the buffer back after a call that ended with the silo's answer.</summary>
    public async Task ReturnAsync(SharedMemoryBuffer buffer)
    {
        if (_disposed) await RetireAsync(buffer);
        else _free.Add(buffer);
    }

    /// <summary>Unregisters and deletes a buffer that will not be used again.</summary>
    public async Task RetireAsync(SharedMemoryBuffer buffer)
    {
        if (!_all.TryRemove(buffer, out _)) return;
        try
        {
            await client.UnregisterSharedMemoryAsync(new Proto.UnregisterSharedMemoryRequest { Name = buffer.Name },
                deadline: DateTime.UtcNow + RegistrationDeadline);
        }
        catch (Exception e) when (e is RpcException or ObjectDisposedException)
        {
            // The silo is gone or forgot it (a restart): either way it holds no mapping of ours worth keeping.
        }
        finally
        {
            buffer.Dispose();
        }
    }

    private async Task<SharedMemoryBuffer?> CreateAsync(long byteSize, CancellationToken cancellationToken)
    {
        SharedMemoryBuffer buffer;
        try
        {
            buffer = SharedMemoryBuffer.Create(directory, Math.Max(MinimumBytes, (long)BitOperations.RoundUpToPowerOf2((ulong)byteSize)));
        }
        catch (Exception e) when (fallBackInline && e is IOException or UnauthorizedAccessException)
        {
            _unusable = true;
            return null;
        }
        try
        {
            await client.RegisterSharedMemoryAsync(new Proto.RegisterSharedMemoryRequest { Name = buffer.Name, Key = buffer.Name, ByteSize = buffer.ByteSize },
                deadline: DateTime.UtcNow + RegistrationDeadline, cancellationToken: cancellationToken);
        }
        catch (RpcException e) when (fallBackInline && e.StatusCode is StatusCode.ResourceExhausted)
        {
            buffer.Dispose();
            return null;
        }
        catch (RpcException e) when (fallBackInline && e.StatusCode is StatusCode.FailedPrecondition or StatusCode.PermissionDenied
                                         or StatusCode.Unimplemented or StatusCode.NotFound or StatusCode.InvalidArgument)
        {
            // This silo cannot see our files (another machine or container, or the feature is off): inline from now on.
            buffer.Dispose();
            _unusable = true;
            return null;
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
        _all[buffer] = 0;
        return buffer;
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        while (_free.TryTake(out var buffer)) await RetireAsync(buffer);
    }
}
