using System.Net.Http.Headers;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Configuration;

namespace Headwise.Client;

/// <summary>
/// How <see cref="GrpcAttentionClient"/> reaches a gateway: its address, the API key it sends, how long a call may take,
/// how it retries idempotent calls, whether forward passes use shared memory, and optionally the HTTP handler (for TLS
/// settings such as a private certificate authority). Every property but <see cref="HttpHandler"/> binds from configuration
/// (<c>AddHeadwiseClient(configuration.GetSection("Headwise"))</c>: <c>Address</c>, <c>ApiKey</c>, <c>DefaultDeadline</c>
/// as <c>00:00:30</c>, <c>MaxAttempts</c>, <c>InitialBackoff</c>, <c>MaxBackoff</c>, <c>SharedMemory</c> as <c>Auto</c>,
/// <c>SharedMemoryDirectory</c>).
/// </summary>
public sealed class GrpcAttentionClientOptions
{
    /// <summary>The environment variable the key is read from when <see cref="ApiKey"/> is not given.</summary>
    public const string ApiKeyVariable = "HEADWISE_API_KEY";

    /// <summary>The default deadline of a call: <see cref="DefaultDeadline"/>'s default.</summary>
    public static readonly TimeSpan DefaultCallDeadline = TimeSpan.FromSeconds(30);

    /// <summary>The gateway, http:// for cleartext HTTP/2 or https:// for TLS; default <see cref="GrpcAttentionClient.DefaultAddress"/>.
    /// Used by the dependency-injection registration; the constructors take the address as an argument.</summary>
    public Uri? Address { get; set; }

    /// <summary>
    /// How long each call except an upload may take, retries included, before it fails with
    /// <see cref="Headwise.Contracts.ErrorCode.DeadlineExceeded"/> (the gateway stops the work too); default 30 s. Null or
    /// <see cref="Timeout.InfiniteTimeSpan"/>: no deadline. An upload has none: its length is the file's; cancel its token to stop it.
    /// The caller's token can still end any call earlier, which surfaces as <see cref="OperationCanceledException"/>.
    /// </summary>
    public TimeSpan? DefaultDeadline { get; set; } = DefaultCallDeadline;

    /// <summary>Sent as `authorization: Bearer &lt;key&gt;` on every call; default: $HEADWISE_API_KEY, else none.</summary>
    public string? ApiKey { get; set; } = Environment.GetEnvironmentVariable(ApiKeyVariable);

    /// <summary>
    /// Attempts of an idempotent call (Forward, GetModel, ListModels) that fails with UNAVAILABLE, the first
    /// included (exponential backoff with jitter, as gRPC's retry policy: its own for GetModel and ListModels, the client's
    /// for Forward); 1 turns retries off.
    /// </summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>Backoff before the first retry; each further one doubles it, up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest backoff between two attempts.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The innermost HTTP handler (e.g. a SocketsHttpHandler with SslOptions); default: a SocketsHttpHandler whose
    /// HTTP/2 receive window holds a whole large answer (16 MB), so a forward's Y streams without a window update per 64 KB.</summary>
    public HttpMessageHandler? HttpHandler { get; set; }

    /// <summary>Whether forward passes move X and Y through shared memory (a client on the silo's machine); default
    /// <see cref="SharedMemoryMode.Off"/>. Binds from configuration as <c>SharedMemory</c> (<c>Off</c>, <c>On</c>, <c>Auto</c>).</summary>
    public SharedMemoryMode SharedMemory { get; set; } = SharedMemoryMode.Off;

    /// <summary>Where the client creates its shared-memory files: the directory the silo's Headwise__SharedMemoryDirectory
    /// names on the same machine; default /dev/shm.</summary>
    public string SharedMemoryDirectory { get; set; } = "/dev/shm";

    /// <summary>The idempotent RPCs that are retried; a repeated Forward computes the same Y again.</summary>
    public static readonly IReadOnlyList<string> IdempotentMethods = ["Forward", "GetModel", "ListModels"];

    /// <summary><see cref="DefaultDeadline"/> checked: null for none, else a positive span.</summary>
    internal TimeSpan? CallDeadline()
    {
        if (DefaultDeadline is not { } deadline || deadline == Timeout.InfiniteTimeSpan) return null;
        if (deadline <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(DefaultDeadline), deadline, "a positive span, or null for no deadline");
        return deadline;
    }

    internal GrpcChannel CreateChannel(Uri address)
    {
        if (MaxAttempts < 1) throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, "at least 1");
        var options = new GrpcChannelOptions
        {
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
            MaxRetryAttempts = Math.Max(MaxAttempts, 1),
        };
        if (MaxAttempts > 1)
        {
            var retried = new MethodConfig
            {
                RetryPolicy = new RetryPolicy
                {
                    MaxAttempts = MaxAttempts,
                    InitialBackoff = InitialBackoff,
                    MaxBackoff = MaxBackoff,
                    BackoffMultiplier = 2,
                    RetryableStatusCodes = { StatusCode.Unavailable },
                },
            };
            // Forward is retried by the client itself (ForwardRetry), without the channel's copy of each request.
            foreach (string method in IdempotentMethods.Where(m => m != "Forward"))
                retried.Names.Add(new MethodName { Service = "headwise.v1.Attention", Method = method });
            options.ServiceConfig = new ServiceConfig { MethodConfigs = { retried } };
        }
        HttpMessageHandler handler = HttpHandler ?? new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            InitialHttp2StreamWindowSize = 16 << 20,
        };
        if (!string.IsNullOrEmpty(ApiKey))
            handler = new BearerKeyHandler(ApiKey) { InnerHandler = handler };
        options.HttpHandler = handler;
        return GrpcChannel.ForAddress(address, options);
    }

    /// <summary>Adds the API key to every request of the channel, cleartext or TLS.</summary>
    private sealed class BearerKeyHandler(string key) : DelegatingHandler
    {
        private readonly AuthenticationHeaderValue _header = new("Bearer", key);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Authorization = _header;
            return base.SendAsync(request, cancellationToken);
        }
    }
}
