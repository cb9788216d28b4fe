using System.Collections.Concurrent;
using System.Net;
using Grpc.Core;
using Headwise.Contracts;
using Microsoft.Extensions.Options;

namespace Headwise.Silo.Gateway;

/// <summary>
/// This silo process's registered shared-memory regions, by name. A registration lives here only (a client registers
/// on the silo its channel reaches) until it is unregistered or the silo stops, when every view is unmapped. Only
/// loopback peers may register or use a region: the files are this machine's, and a caller elsewhere has no business
/// reading or writing them.
/// </summary>
internal sealed class SharedMemoryRegistry(IOptions<SharedMemoryOptions> options) : IDisposable
{
    private readonly ConcurrentDictionary<string, SharedMemoryRegion> _regions = new(StringComparer.Ordinal);
    private readonly Lock _registering = new();

    public int Count => _regions.Count;

    public void Register(ServerCallContext context, string name, string key, long byteSize)
    {
        RequireUsable(context);
        SharedMemoryFile.ValidateName(name, "name");
        lock (_registering)
        {
            if (_regions.ContainsKey(name))
                throw new HeadwiseException(ErrorCode.AlreadyExists, $"name '{name}' is registered already; unregister it first or choose another.");
            if (_regions.Count >= options.Value.MaxSharedMemoryRegions) ForgetDeletedFiles();
            if (_regions.Count >= options.Value.MaxSharedMemoryRegions)
                throw new HeadwiseException(ErrorCode.ResourceExhausted,
                    $"this silo has {_regions.Count} shared-memory regions registered, its limit (Headwise__MaxSharedMemoryRegions); unregister some.");
            _regions[name] = SharedMemoryFile.Map(options.Value.SharedMemoryDirectory, name, key, byteSize);
        }
    }

    /// <summary>
    /// Drops the registrations whose file is gone from the directory: what a client that died without unregistering
    /// leaves once its file is deleted (by an operator, or a pod's /dev/shm emptied), so such leftovers do not hold slots.
    /// </summary>
    private void ForgetDeletedFiles()
    {
        foreach (var (name, region) in _regions)
            if (!File.Exists(Path.Join(options.Value.SharedMemoryDirectory, region.Key)) && _regions.TryRemove(name, out var gone))
                gone.Retire();
    }

    public void Unregister(ServerCallContext context, string name)
    {
        RequireUsable(context);
        SharedMemoryFile.ValidateName(name, "name");
        if (!_regions.TryRemove(name, out var region))
            throw new HeadwiseException(ErrorCode.NotFound, $"name '{name}': no such shared-memory region on this silo.");
        region.Retire();
    }

    /// <summary>
    /// A leased, checked range for one call; <paramref name="field"/> names the reference in errors. The caller releases
    /// the lease (<see cref="SharedMemoryRegion.Release"/>) when the call no longer touches the range.
    /// </summary>
    public SharedMemoryRange Lease(ServerCallContext context, V1.SharedMemoryRef reference, string field)
    {
        RequireUsable(context);
        if (string.IsNullOrEmpty(reference.Region))
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"{field}.region is empty; name a registered region.");
        if (!_regions.TryGetValue(reference.Region, out var region) || !region.TryAcquire())
            throw new HeadwiseException(ErrorCode.NotFound,
                $"{field}.region '{EchoedValue.Of(reference.Region)}' is not registered on this silo; RegisterSharedMemory it first.");
        if (reference.Offset < 0 || reference.ByteSize < 0 || reference.Offset > region.ByteSize - reference.ByteSize)
        {
            region.Release();
            throw new HeadwiseException(ErrorCode.InvalidArgument,
                $"{field}: offset {reference.Offset} + byte_size {reference.ByteSize} lies outside region '{region.Name}' of {region.ByteSize} bytes.");
        }
        return new SharedMemoryRange(region, reference.Offset, reference.ByteSize, field);
    }

    private void RequireUsable(ServerCallContext context)
    {
        if (!options.Value.SharedMemory)
            throw new HeadwiseException(ErrorCode.FailedPrecondition,
                "shared memory is off on this silo; set Headwise__SharedMemory=true to enable it, or send tensors inline.");
        var peer = context.GetHttpContext().Connection.RemoteIpAddress;
        if (peer is { IsIPv4MappedToIPv6: true }) peer = peer.MapToIPv4();
        if (peer is null || !IPAddress.IsLoopback(peer))
            throw new RpcException(new Status(StatusCode.PermissionDenied,
                $"shared memory is served to clients on this silo's machine only (loopback); this call came from {peer?.ToString() ?? "an unknown peer"}."));
    }

    public void Dispose()
    {
        foreach (var name in _regions.Keys)
            if (_regions.TryRemove(name, out var region)) region.Retire();
    }
}
