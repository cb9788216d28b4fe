namespace Headwise.Silo.Gateway;

/// <summary>
/// Who may call the gRPC gateway, over what, and how many forward passes it runs at once; bound once from the
/// "Headwise" section (Headwise__ApiKey, Headwise__RequireKeyForForward, Headwise__TlsCertificate,
/// Headwise__TlsCertificatePassword, Headwise__MaxConcurrentForwards, Headwise__MaxConcurrentDecodes, Headwise__Reflection) and
/// checked at start.
/// </summary>
public sealed class GatewayOptions
{
    /// <summary>When set, every call but the ones <see cref="ApiKeyInterceptor"/> lists needs `authorization: Bearer &lt;key&gt;`.</summary>
    public string ApiKey { get; set; } = "";

    /// <summary>With <see cref="ApiKey"/> set: Forward (and every other compute call) needs the key too.</summary>
    public bool RequireKeyForForward { get; set; }

    /// <summary>Path of a PKCS#12 (.pfx) certificate; when set, the gRPC port speaks TLS (HTTP/2 over TLS) only.</summary>
    public string TlsCertificate { get; set; } = "";

    /// <summary>Password of <see cref="TlsCertificate"/>, if it has one.</summary>
    public string TlsCertificatePassword { get; set; } = "";

    /// <summary>Most forward passes this silo's gateway runs at once; one more is RESOURCE_EXHAUSTED at once. 0: no limit.</summary>
    public int MaxConcurrentForwards { get; set; } = 256;

    /// <summary>Most decode steps this silo's gateway runs at once; one more is RESOURCE_EXHAUSTED at once. 0: no limit.</summary>
    public int MaxConcurrentDecodes { get; set; } = 1024;

    /// <summary>
    /// Continue Kestrel's socket reads and writes on the socket's own I/O thread instead of handing each to the thread pool
    /// (Kestrel's UnsafePreferInlineScheduling; Headwise__InlineScheduling). A decode step is a few small frames each way,
    /// and on a virtualised host every hand-off can wait for a thread to wake: docs/performance.md, "Socket continuations
    /// inline". Nothing in the gateway blocks a thread (its handlers await the grains), which is what the option requires.
    /// </summary>
    public bool InlineScheduling { get; set; } = true;

    /// <summary>
    /// Serve gRPC server reflection (grpc.reflection.v1 and v1alpha), so grpcurl lists and describes the services without
    /// the .proto. Unset: on when the gRPC port listens on a loopback address only, off otherwise.
    /// </summary>
    public bool? Reflection { get; set; }

    /// <summary>Whether reflection is served on a gRPC port bound to <paramref name="listenAddress"/>.</summary>
    public bool ServesReflection(System.Net.IPAddress listenAddress) => Reflection ?? System.Net.IPAddress.IsLoopback(listenAddress);

    /// <summary>Every problem with these settings, each naming its Headwise__ variable; empty when usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (MaxConcurrentForwards < 0)
            problems.Add($"Headwise__MaxConcurrentForwards is {MaxConcurrentForwards}; it must be 0 (no limit) or positive.");
        if (MaxConcurrentDecodes < 0)
            problems.Add($"Headwise__MaxConcurrentDecodes is {MaxConcurrentDecodes}; it must be 0 (no limit) or positive.");
        if (RequireKeyForForward && string.IsNullOrEmpty(ApiKey))
            problems.Add("Headwise__RequireKeyForForward is true but Headwise__ApiKey is empty; set the key.");
        if (!string.IsNullOrEmpty(ApiKey) && ApiKey.Length < 16)
            problems.Add($"Headwise__ApiKey has {ApiKey.Length} characters; use at least 16.");
        if (!string.IsNullOrEmpty(TlsCertificate) && !File.Exists(TlsCertificate))
            problems.Add($"Headwise__TlsCertificate is '{TlsCertificate}'; no such file.");
        return problems;
    }
}
