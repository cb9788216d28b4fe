using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Checks `authorization: Bearer &lt;key&gt;` against Headwise__ApiKey when one is configured: the calls that change
/// the cluster (create, upload, delete, rebalance) always need it; compute calls (Forward and anything else not
/// read-only) need it when Headwise__RequireKeyForForward is true; GetModel and ListModels never do. A missing or
/// wrong key is UNAUTHENTICATED. The key is compared in constant time and never logged.
/// </summary>
public sealed class ApiKeyInterceptor : Interceptor
{
    private static readonly HashSet<string> AdminMethods = ["CreateModel", "UploadWeights", "DeleteModel", "Rebalance"];
    private static readonly HashSet<string> ReadMethods = ["GetModel", "ListModels"];

    private readonly byte[]? _keyHash;
    private readonly bool _requireKeyForForward;

    public ApiKeyInterceptor(IOptions<GatewayOptions> options)
    {
        _keyHash = string.IsNullOrEmpty(options.Value.ApiKey) ? null : Hash(options.Value.ApiKey);
        _requireKeyForForward = options.Value.RequireKeyForForward;
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Check(ServerCallContext context)
    {
        if (_keyHash is null) return;
        string method = context.Method[(context.Method.LastIndexOf('/') + 1)..];
        if (ReadMethods.Contains(method)) return;
        if (!AdminMethods.Contains(method) && !_requireKeyForForward) return;

        string? header = context.RequestHeaders.GetValue("authorization");
        const string scheme = "Bearer ";
        if (header is null || !header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
            throw new RpcException(new Status(StatusCode.Unauthenticated,
                $"authorization: {method} needs the header 'authorization: Bearer <key>' (Headwise__ApiKey)."));
        // Hashing first gives both sides the same length, so the comparison's time says nothing about the key.
        if (!CryptographicOperations.FixedTimeEquals(Hash(header[scheme.Length..].Trim()), _keyHash))
            throw new RpcException(new Status(StatusCode.Unauthenticated, $"authorization: the key sent with {method} is not this cluster's key."));
    }

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
