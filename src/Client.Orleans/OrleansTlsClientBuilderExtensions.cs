using Headwise.Contracts;
using Orleans.Connections.Security;

namespace Headwise.Client;

/// <summary>Mutual TLS for an Orleans client of a Headwise cluster whose silos set Headwise__OrleansTls__*.</summary>
public static class OrleansTlsClientBuilderExtensions
{
    /// <summary>
    /// Connects to the gateways over TLS, presenting <see cref="OrleansTlsSettings.CertificatePath"/> and accepting a
    /// gateway only when its certificate passes <see cref="OrleansTlsSettings.PeerValidator"/>. Use the settings the
    /// silos have (or a certificate they trust); a silo with TLS on refuses a client without it. Does nothing when
    /// <paramref name="settings"/> has no certificate.
    /// </summary>
    public static IClientBuilder UseHeadwiseTls(this IClientBuilder builder, OrleansTlsSettings settings)
    {
        if (!settings.Enabled) return builder;
        var problems = settings.Problems();
        if (problems.Count > 0) throw new ArgumentException(string.Join(" ", problems), nameof(settings));
        var certificate = settings.LoadCertificate();
        var trusted = settings.PeerValidator(certificate);
        return builder.UseTls(certificate, tls =>
        {
            tls.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
            tls.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
            tls.RemoteCertificateValidation = (peer, _, _) => trusted(peer);
        });
    }
}
