using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Checks `authorization: Bearer &lt;key&gt;` against Headwise__ApiKey when one is configured, fail-closed: the methods
/// that may go without the key are listed here, and every other method, including any added to the service later,
/// needs it. Without a key: GetModel and ListModels (reads of public model descriptions) always; Forward, OpenSession,
/// Decode, DecodeStream, CloseSession, RegisterSharedMemory and UnregisterSharedMemory (compute and what it reads and
/// writes; a session id is itself a bearer token) only while Headwise__RequireKeyForForward
/// is false; grpc.health.v1's Check and Watch always (probes and load balancers carry no key, and the answer is one
/// status word). CreateModel, UploadWeights, DeleteModel, Rebalance, gRPC reflection and anything not listed always need
/// the key: reflection is for operators, who have it (grpcurl -H 'authorization: Bearer …' sends it on reflection calls
/// too), and a service added later needs the key until it is listed. A missing or wrong key is UNAUTHENTICATED. The key is
/// compared in constant time and never logged.
/// </summary>
public sealed class ApiKeyInterceptor : Interceptor
{
    private static readonly string Service = "/" + V1.Attention.Descriptor.FullName + "/";

    /// <summary>Full gRPC method paths ("/headwise.v1.Attention/GetModel") that never need the key.</summary>
    public static readonly IReadOnlySet<string> OpenMethods = Paths(
            nameof(V1.Attention.AttentionBase.GetModel), nameof(V1.Attention.AttentionBase.ListModels))
        .Union(["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"]).ToHashSet(StringComparer.Ordinal);

    /// <summary>Full gRPC method paths that need the key only when Headwise__RequireKeyForForward is true.</summary>
    public static readonly IReadOnlySet<string> ComputeMethods = Paths(
        nameof(V1.Attention.AttentionBase.Forward), nameof(V1.Attention.AttentionBase.OpenSession),
        nameof(V1.Attention.AttentionBase.Decode), nameof(V1.Attention.AttentionBase.DecodeStream),
        nameof(V1.Attention.AttentionBase.CloseSession), nameof(V1.Attention.AttentionBase.RegisterSharedMemory),
        nameof(V1.Attention.AttentionBase.UnregisterSharedMemory));

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
        if (!NeedsKey(context.Method, _requireKeyForForward)) return;
        string method = context.Method[(context.Method.LastIndexOf('/') + 1)..];

        string? header = context.RequestHeaders.GetValue("authorization");
        const string scheme = "Bearer ";
        if (header is null || !header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
            throw new RpcException(new Status(StatusCode.Unauthenticated,
                $"authorization: {method} needs the header 'authorization: Bearer <key>' (Headwise__ApiKey)."));
        // Hashing first gives both sides the same length, so the comparison's time says nothing about the key.
        if (!CryptographicOperations.FixedTimeEquals(Hash(header[scheme.Length..].Trim()), _keyHash))
            throw new RpcException(new Status(StatusCode.Unauthenticated, $"authorization: the key sent with {method} is not this cluster's key."));
    }

    /// <summary>Whether a call to <paramref name="fullMethod"/> must carry the key: true for anything not listed.</summary>
    public static bool NeedsKey(string fullMethod, bool requireKeyForForward) =>
        !OpenMethods.Contains(fullMethod) && (requireKeyForForward || !ComputeMethods.Contains(fullMethod));

    private static HashSet<string> Paths(params string[] methods) => methods.Select(m => Service + m).ToHashSet(StringComparer.Ordinal);

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
