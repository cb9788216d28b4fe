using System.Security.Cryptography.X509Certificates;
using Headwise.Client;
using Headwise.Contracts;
using Headwise.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Runtime.Messaging;

namespace Headwise.SystemTests;

/// <summary>
/// Silo processes with Headwise__OrleansTls__* set (a self-signed certificate made here): they form a cluster over
/// mutual TLS, an Orleans client presenting the certificate calls grains, and clients without TLS or with another
/// certificate cannot call any grain.
/// </summary>
public sealed class OrleansTlsTests(TlsSilos silos) : IClassFixture<TlsSilos>
{
    [Fact]
    public async Task Two_silos_form_a_cluster_over_mutual_TLS_and_a_client_with_the_certificate_calls_grains()
    {
        await using var client = await OrleansClient.ConnectAsync(silos.First.GatewayPort, silos.Settings);
        var management = client.Grains.GetGrain<IManagementGrain>(0);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await management.GetHosts(onlyActive: true)).Count < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "the second silo did not join the first over TLS within 60 s:\n" + silos.Second.Output);
            await Task.Delay(250);
        }

        var attention = new OrleansAttentionClient(client.Grains);
        var spec = new AttentionSpec { ModelDim = 64, HeadCount = 4 };
        await attention.CreateModelAsync("over-tls", spec);
        Assert.Contains(await attention.ListModelsAsync(), m => m.Name == "over-tls");
        await attention.DeleteModelAsync("over-tls");
    }

    [Fact]
    public async Task A_plain_Orleans_client_cannot_call_a_grain()
    {
        await AssertRefused(new OrleansTlsSettings());
    }

    [Fact]
    public async Task An_Orleans_client_with_TLS_but_a_certificate_the_silos_do_not_trust_cannot_call_a_grain()
    {
        using var stranger = TestCertificates.SelfSigned("stranger");
        string path = TestCertificates.WritePfx(stranger, "pw");
        try
        {
            // The stranger trusts the silos' certificate: only the silo's check of the client certificate can refuse it.
            await AssertRefused(new OrleansTlsSettings { CertificatePath = path, Password = "pw", AllowedThumbprints = silos.Certificate.Thumbprint });
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// The client gives up after three attempts to reach the gateway (Orleans would retry until cancelled); each attempt
    /// must have failed because the silo dropped the connection, and no grain call may have been answered.
    /// </summary>
    private async Task AssertRefused(OrleansTlsSettings settings)
    {
        var attempts = new List<Exception>();
        var error = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await using var client = await OrleansClient.ConnectAsync(silos.First.GatewayPort, settings, attempts, timeout.Token);
            await client.Grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).List().WaitAsync(timeout.Token);
        });
        Assert.True(error is ConnectionFailedException or SiloUnavailableException,
            $"expected the connection to fail; got {error.GetType().Name}: {error.Message}");
        Assert.Equal(3, attempts.Count);
        Assert.All(attempts, attempt => Assert.True(attempt is ConnectionFailedException or SiloUnavailableException,
            $"an attempt failed with {attempt.GetType().Name}: {attempt.Message}"));
    }

}

/// <summary>An Orleans client of the localhost cluster behind one gateway port, with or without TLS.</summary>
internal sealed class OrleansClient : IAsyncDisposable
{
    private readonly IHost _host;

    private OrleansClient(IHost host) => _host = host;

    public IClusterClient Grains => _host.Services.GetRequiredService<IClusterClient>();

    /// <param name="failedAttempts">When given, each failed attempt to reach the gateway is added to it and the client gives
    /// up after three; else it retries until <paramref name="cancellationToken"/> ends.</param>
    public static async Task<OrleansClient> ConnectAsync(int gatewayPort, OrleansTlsSettings tls, List<Exception>? failedAttempts = null,
        CancellationToken cancellationToken = default)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Critical);
        builder.UseOrleansClient(client =>
        {
            client.UseLocalhostClustering(gatewayPort).UseHeadwiseTls(tls);
            if (failedAttempts is not null)
            {
                client.UseConnectionRetryFilter(async (exception, token) =>
                {
                    lock (failedAttempts) failedAttempts.Add(exception);
                    await Task.Delay(200, token);
                    lock (failedAttempts) return failedAttempts.Count < 3;
                });
            }
        });
        var host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken);
        }
        catch
        {
            host.Dispose();
            throw;
        }
        return new OrleansClient(host);
    }

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _host.StopAsync(stop.Token);
        }
        finally
        {
            _host.Dispose();
        }
    }
}

/// <summary>
/// Two silo processes on localhost clustering sharing one self-signed certificate for the Orleans ports: the first reads
/// it from a PKCS#12 file, the second from PEM files as `kubectl create secret tls` mounts them (tls.crt, tls.key).
/// </summary>
public sealed class TlsSilos : IAsyncLifetime
{
    private const string Password = "pfx-password";
    private string? _path;
    private string? _pemCertificate;
    private string? _pemKey;

    public X509Certificate2 Certificate { get; private set; } = null!;
    public OrleansTlsSettings Settings { get; private set; } = null!;
    public SiloProcess First { get; private set; } = null!;
    public SiloProcess Second { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Certificate = TestCertificates.SelfSigned("headwise-silo");
        _path = TestCertificates.WritePfx(Certificate, Password);
        Settings = new OrleansTlsSettings { CertificatePath = _path, Password = Password };
        First = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string>
        {
            ["Headwise__DemoModel"] = "false",
            ["Headwise__OrleansTls__CertificatePath"] = _path,
            ["Headwise__OrleansTls__Password"] = Password,
        });
        await First.WaitUntilHealthyAsync();

        _pemCertificate = Path.ChangeExtension(_path, ".crt");
        _pemKey = Path.ChangeExtension(_path, ".key");
        await File.WriteAllTextAsync(_pemCertificate, Certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(_pemKey, Certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        Second = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string>
        {
            ["Headwise__DemoModel"] = "false",
            ["Headwise__PrimarySiloPort"] = First.SiloPort.ToString(),
            ["Headwise__OrleansTls__CertificatePath"] = _pemCertificate,
            ["Headwise__OrleansTls__KeyPath"] = _pemKey,
        });
        await Second.WaitUntilHealthyAsync();
    }

    public async Task DisposeAsync()
    {
        if (Second is not null) await Second.DisposeAsync();
        if (First is not null) await First.DisposeAsync();
        Certificate?.Dispose();
        foreach (var file in new[] { _path, _pemCertificate, _pemKey })
            if (file is not null) File.Delete(file);
    }
}
