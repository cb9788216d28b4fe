using Grpc.Core;
using Headwise.V1;

namespace Headwise.Silo.Gateway;

internal sealed partial class AttentionGateway
{
    public override Task<RegisterSharedMemoryResponse> RegisterSharedMemory(RegisterSharedMemoryRequest request, ServerCallContext context)
    {
        sharedMemory.Register(context, request.Name, request.Key, request.ByteSize);
        return Task.FromResult(new RegisterSharedMemoryResponse());
    }

    public override Task<UnregisterSharedMemoryResponse> UnregisterSharedMemory(UnregisterSharedMemoryRequest request, ServerCallContext context)
    {
        sharedMemory.Unregister(context, request.Name);
        return Task.FromResult(new UnregisterSharedMemoryResponse());
    }
}
