using System.Security.Cryptography.X509Certificates;
using Headwise.TestSupport;

namespace Headwise.Contracts.Tests;

/// <summary>
/// Which peer certificates a silo or client accepts on the Orleans ports, and how the certificate files are read
/// (PKCS#12 and PEM), with certificates made here.
/// </summary>
public sealed class OrleansTlsSettingsTests : IDisposable
{
    private readonly List<string> _files = [];

    [Fact]
    public void A_peer_is_trusted_with_our_own_certificate_or_a_pinned_one_and_not_with_another()
    {
        using var own = TestCertificates.SelfSigned("headwise-silo");
        using var pinned = TestCertificates.SelfSigned("rotated-in");
        using var stranger = TestCertificates.SelfSigned("stranger");
        using var expired = TestCertificates.SelfSigned("expired", notAfter: DateTimeOffset.UtcNow.AddMinutes(-1));

        var settings = new OrleansTlsSettings { CertificatePath = Pfx(own), Password = "pw", AllowedThumbprints = $" {pinned.Thumbprint.ToLowerInvariant()} , {expired.Thumbprint}" };
        Assert.Empty(settings.Problems());
        var trusted = settings.PeerValidator(settings.LoadCertificate());

        Assert.True(trusted(Public(own)));
        Assert.True(trusted(Public(pinned)));
        Assert.False(trusted(Public(stranger)));
        Assert.False(trusted(Public(expired)));
    }

    [Fact]
    public void With_a_CA_a_peer_is_trusted_when_its_certificate_chains_to_it()
    {
        using var authority = TestCertificates.Authority("headwise-ca");
        using var otherAuthority = TestCertificates.Authority("other-ca");
        using var silo = TestCertificates.IssuedBy(authority, "silo-0");
        using var sibling = TestCertificates.IssuedBy(authority, "silo-1");
        using var outsider = TestCertificates.IssuedBy(otherAuthority, "silo-x");

        var settings = new OrleansTlsSettings { CertificatePath = Pfx(silo), Password = "pw", CaCertificatePath = Write("ca.pem", authority.ExportCertificatePem()) };
        Assert.Empty(settings.Problems());
        var trusted = settings.PeerValidator(settings.LoadCertificate());

        Assert.True(trusted(Public(sibling)));
        Assert.False(trusted(Public(outsider)));
        Assert.False(trusted(Public(otherAuthority)));
    }

    [Fact]
    public void PEM_certificate_and_key_load_as_the_same_certificate_as_the_PKCS12_file()
    {
        using var own = TestCertificates.SelfSigned("headwise-silo");
        string certificate = Write("tls.crt", own.ExportCertificatePem());
        string key = Write("tls.key", own.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());

        using var fromPem = new OrleansTlsSettings { CertificatePath = certificate, KeyPath = key }.LoadCertificate();
        Assert.Equal(own.Thumbprint, fromPem.Thumbprint);
        Assert.True(fromPem.HasPrivateKey);

        string combined = Write("tls.pem", own.ExportCertificatePem() + "\n" + own.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        Assert.Empty(new OrleansTlsSettings { CertificatePath = combined }.Problems());
    }

    [Fact]
    public void Problems_name_the_setting_a_missing_file_a_bad_password_a_missing_key_and_a_bad_thumbprint()
    {
        using var own = TestCertificates.SelfSigned("headwise-silo");
        Assert.Empty(new OrleansTlsSettings().Problems());
        Assert.False(new OrleansTlsSettings().Enabled);

        Assert.Contains(new OrleansTlsSettings { CaCertificatePath = "/ca.pem" }.Problems(), p => p.Contains("Headwise__OrleansTls__CertificatePath is empty"));
        Assert.Contains(new OrleansTlsSettings { CertificatePath = "/no/such.pfx" }.Problems(), p => p.Contains("Headwise__OrleansTls__CertificatePath is '/no/such.pfx'; no such file"));
        Assert.Contains(new OrleansTlsSettings { CertificatePath = Pfx(own), Password = "wrong" }.Problems(), p => p.Contains("Headwise__OrleansTls__Password"));
        Assert.Contains(new OrleansTlsSettings { CertificatePath = Write("public.pem", own.ExportCertificatePem()) }.Problems(),
            p => p.Contains("Headwise__OrleansTls__CertificatePath"));
        Assert.Contains(new OrleansTlsSettings { CertificatePath = Pfx(own), Password = "pw", AllowedThumbprints = "abc" }.Problems(),
            p => p.Contains("Headwise__OrleansTls__AllowedThumbprints has 'ABC'"));
    }

    // What the TLS handshake hands over: the peer's certificate without its private key.
    private static X509Certificate2 Public(X509Certificate2 certificate) => X509CertificateLoader.LoadCertificate(certificate.RawData);

    private string Pfx(X509Certificate2 certificate)
    {
        string path = TestCertificates.WritePfx(certificate, "pw");
        _files.Add(path);
        return path;
    }

    private string Write(string name, string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"headwise-test-{Guid.NewGuid():N}-{name}");
        File.WriteAllText(path, text);
        _files.Add(path);
        return path;
    }

    public void Dispose()
    {
        foreach (var file in _files) File.Delete(file);
    }
}
