using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Headwise.Silo;
using Headwise.TestSupport;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace Headwise.Client.Tests;

/// <summary>
/// One silo in this process with an API key and, optionally, TLS on its gRPC port from a self-signed certificate
/// made here, and a small Headwise__MaxConcurrentForwards; no demo model.
/// </summary>
public abstract class SecuredSilo : IAsyncLifetime
{
    public const string Key = "test-key-0123456789abcdef";
    public const int MaxConcurrentForwards = 2;

    private WebApplication? _silo;
    private string? _certificatePath;

    protected abstract bool Tls { get; }
    protected abstract bool RequireKeyForForward { get; }

    public Uri GrpcAddress { get; private set; } = null!;
    public X509Certificate2? Certificate { get; private set; }

    /// <summary>Every line the silo logged (Information and above), with exceptions, to check no secret leaks.</summary>
    public ConcurrentQueue<string> Log { get; } = new();

    public async Task InitializeAsync()
    {
        var ports = FreePorts.Take(4);
        List<string> args =
        [
            $"--Headwise:SiloPort={ports[0]}", $"--Headwise:GatewayPort={ports[1]}",
            $"--Headwise:GrpcPort={ports[2]}", $"--Headwise:WebPort={ports[3]}",
            "--Headwise:DemoModel=false", $"--Headwise:ApiKey={Key}",
            $"--Headwise:RequireKeyForForward={RequireKeyForForward}",
            $"--Headwise:MaxConcurrentForwards={MaxConcurrentForwards}",
            "--Logging:LogLevel:Default=Information",
        ];
        if (Tls)
        {
            const string password = "pfx-password";
            Certificate = SelfSigned();
            _certificatePath = Path.Combine(Path.GetTempPath(), $"headwise-test-{Guid.NewGuid():N}.pfx");
            await File.WriteAllBytesAsync(_certificatePath, Certificate.Export(X509ContentType.Pfx, password));
            args.Add($"--Headwise:TlsCertificate={_certificatePath}");
            args.Add($"--Headwise:TlsCertificatePassword={password}");
        }
        _silo = HeadwiseSilo.Build([.. args], builder =>
        {
            builder.Logging.ClearProviders();
            builder.Logging.AddProvider(new CapturingLogger(Log));
        });
        await _silo.StartAsync();
        GrpcAddress = new Uri($"{(Tls ? "https" : "http")}://127.0.0.1:{ports[2]}");
    }

    /// <summary>SDK options that trust exactly this silo's certificate (when TLS is on) and send <paramref name="key"/>.</summary>
    public GrpcAttentionClientOptions ClientOptions(string? key)
    {
        var options = new GrpcAttentionClientOptions { ApiKey = key };
        if (Certificate is { } certificate)
        {
            options.HttpHandler = new SocketsHttpHandler
            {
                SslOptions = new SslClientAuthenticationOptions
                {
                    RemoteCertificateValidationCallback = (_, presented, _, _) =>
                        presented is not null && presented.GetCertHashString() == certificate.Thumbprint,
                },
            };
        }
        return options;
    }

    private static X509Certificate2 SelfSigned()
    {
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=headwise-test", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    public async Task DisposeAsync()
    {
        if (_silo is not null)
        {
            await _silo.StopAsync();
            await _silo.DisposeAsync();
        }
        if (_certificatePath is not null) File.Delete(_certificatePath);
    }
}

/// <summary>Cleartext gRPC, key needed for changes only.</summary>
public sealed class KeyedSilo : SecuredSilo
{
    protected override bool Tls => false;
    protected override bool RequireKeyForForward => false;
}

/// <summary>TLS on the gRPC port, key needed for Forward too.</summary>
public sealed class TlsSilo : SecuredSilo
{
    protected override bool Tls => true;
    protected override bool RequireKeyForForward => true;
}

/// <summary>Keeps every log line of a silo in memory.</summary>
internal sealed class CapturingLogger(ConcurrentQueue<string> lines) : ILoggerProvider, ILogger
{
    public ILogger CreateLogger(string categoryName) => this;

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        lines.Enqueue($"{logLevel}: {formatter(state, exception)} {exception}");

    public void Dispose()
    {
    }
}
