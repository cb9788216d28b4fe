using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Headwise.Silo.Gateway;

/// <summary>
/// The gRPC port's transport: HTTP/2 over TLS when Headwise__TlsCertificate names a certificate, else cleartext
/// HTTP/2 only (h2c; on Http1AndHttp2 a cleartext gRPC call fails with HTTP_1_1_REQUIRED).
/// </summary>
internal static class GatewayTransport
{
    public static void Configure(ListenOptions listen, GatewayOptions gateway)
    {
        listen.Protocols = HttpProtocols.Http2;
        if (string.IsNullOrEmpty(gateway.TlsCertificate)) return;
        var certificate = X509CertificateLoader.LoadPkcs12FromFile(gateway.TlsCertificate,
            string.IsNullOrEmpty(gateway.TlsCertificatePassword) ? null : gateway.TlsCertificatePassword);
        listen.UseHttps(certificate);
    }
}
