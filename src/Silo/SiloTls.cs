using Headwise.Contracts;
using Orleans.Connections.Security;

namespace Headwise.Silo;

/// <summary>
/// Mutual TLS on a silo's Orleans ports from Headwise__OrleansTls__*: silo-to-silo connections and client connections
/// to the gateway both need a certificate the settings trust, so a client without one cannot call any grain.
/// </summary>
public static class SiloTls
{
    public static void Configure(ISiloBuilder silo, OrleansTlsSettings settings)
    {
        if (!settings.Enabled) return;
        var certificate = settings.LoadCertificate();
        var trusted = settings.PeerValidator(certificate);
        silo.UseTls(certificate, tls =>
        {
            // Required both ways: silos check each other, and the gateway checks every client.
            tls.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
            tls.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
            tls.RemoteCertificateValidation = (peer, _, _) => trusted(peer);
        });
    }
}
