using System.Security.Cryptography.X509Certificates;

namespace Headwise.Contracts;

/// <summary>
/// Mutual TLS on the Orleans ports (silo-to-silo 11111, client-to-gateway 30000), shared by silos and Orleans clients:
/// each side presents <see cref="CertificatePath"/> and accepts a peer only when the peer's certificate is trusted
/// (<see cref="IsTrustedPeer"/>). Silos bind it from Headwise__OrleansTls__*; off while <see cref="CertificatePath"/> is empty.
/// </summary>
public sealed class OrleansTlsSettings
{
    /// <summary>Configuration section, under "Headwise": Headwise__OrleansTls__CertificatePath and so on.</summary>
    public const string Section = "OrleansTls";

    /// <summary>
    /// This side's certificate with its private key: a PKCS#12 file (.pfx or .p12, with <see cref="Password"/>) or a PEM
    /// certificate (its key in the same file or in <see cref="KeyPath"/>). Empty: TLS is off.
    /// </summary>
    public string CertificatePath { get; set; } = "";

    /// <summary>PEM private key of a PEM <see cref="CertificatePath"/>, when the key is in a file of its own.</summary>
    public string KeyPath { get; set; } = "";

    /// <summary>Password of the PKCS#12 file, or of an encrypted PEM key.</summary>
    public string Password { get; set; } = "";

    /// <summary>
    /// PEM file of CA certificates: a peer whose certificate chains to one of them is trusted (each pod may then have its
    /// own certificate). Empty: only peers presenting this side's own certificate or one of <see cref="AllowedThumbprints"/>.
    /// </summary>
    public string CaCertificatePath { get; set; } = "";

    /// <summary>SHA-1 thumbprints (hex, comma-separated) of further peer certificates to trust, e.g. during a rotation.</summary>
    public string AllowedThumbprints { get; set; } = "";

    /// <summary>True when a certificate is configured.</summary>
    public bool Enabled => !string.IsNullOrWhiteSpace(CertificatePath);

    /// <summary>Every problem with these settings, each naming its Headwise__OrleansTls__ variable; empty when usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (!Enabled)
        {
            if (!string.IsNullOrWhiteSpace(KeyPath) || !string.IsNullOrWhiteSpace(CaCertificatePath) || !string.IsNullOrWhiteSpace(AllowedThumbprints))
                problems.Add("Headwise__OrleansTls__CertificatePath is empty but other OrleansTls settings are set; TLS needs the certificate.");
            return problems;
        }
        foreach (var (value, name) in new[] { (CertificatePath, "CertificatePath"), (KeyPath, "KeyPath"), (CaCertificatePath, "CaCertificatePath") })
        {
            if (!string.IsNullOrWhiteSpace(value) && !File.Exists(value))
                problems.Add($"Headwise__OrleansTls__{name} is '{value}'; no such file.");
        }
        foreach (var thumbprint in Thumbprints(AllowedThumbprints))
        {
            if (thumbprint.Length != 40 || !thumbprint.All(char.IsAsciiHexDigit))
                problems.Add($"Headwise__OrleansTls__AllowedThumbprints has '{thumbprint}'; a thumbprint is 40 hex digits.");
        }
        if (problems.Count > 0) return problems;
        try
        {
            using var certificate = LoadCertificate();
            if (!certificate.HasPrivateKey)
                problems.Add($"Headwise__OrleansTls__CertificatePath '{CertificatePath}' has no private key; TLS needs one to present the certificate.");
            if (CaCertificatePath.Length > 0 && LoadAuthorities().Count == 0)
                problems.Add($"Headwise__OrleansTls__CaCertificatePath '{CaCertificatePath}' holds no PEM certificate.");
        }
        catch (System.Security.Cryptography.CryptographicException exception)
        {
            problems.Add($"Headwise__OrleansTls__CertificatePath '{CertificatePath}' could not be read ({exception.Message}); check the file and Headwise__OrleansTls__Password.");
        }
        return problems;
    }

    /// <summary>This side's certificate with its private key.</summary>
    public X509Certificate2 LoadCertificate()
    {
        string extension = Path.GetExtension(CertificatePath).ToLowerInvariant();
        if (extension is ".pfx" or ".p12")
            return X509CertificateLoader.LoadPkcs12FromFile(CertificatePath, string.IsNullOrEmpty(Password) ? null : Password);
        string? keyPath = string.IsNullOrWhiteSpace(KeyPath) ? null : KeyPath;
        return string.IsNullOrEmpty(Password)
            ? X509Certificate2.CreateFromPemFile(CertificatePath, keyPath)
            : X509Certificate2.CreateFromEncryptedPemFile(CertificatePath, Password, keyPath);
    }

    /// <summary>
    /// The check each side applies to the certificate its peer presents: the same certificate as <paramref name="own"/>,
    /// one of <see cref="AllowedThumbprints"/> (both within their validity period), or one that chains to a CA of
    /// <see cref="CaCertificatePath"/>. The host name is not checked: silos are reached by pod IP.
    /// </summary>
    public Func<X509Certificate2, bool> PeerValidator(X509Certificate2 own)
    {
        var pinned = Thumbprints(AllowedThumbprints).Append(own.Thumbprint).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var authorities = CaCertificatePath.Length > 0 ? LoadAuthorities() : null;
        return peer => IsTrustedPeer(peer, pinned, authorities, DateTime.Now);
    }

    private static bool IsTrustedPeer(X509Certificate2 peer, HashSet<string> pinned, X509Certificate2Collection? authorities, DateTime now)
    {
        if (pinned.Contains(peer.Thumbprint)) return peer.NotBefore <= now && now <= peer.NotAfter;
        if (authorities is null) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        // A private CA publishes no revocation list the pods could reach; rotation is by CA or AllowedThumbprints.
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(peer);
    }

    private X509Certificate2Collection LoadAuthorities()
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(CaCertificatePath);
        return authorities;
    }

    private static IEnumerable<string> Thumbprints(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(t => t.Replace(":", "", StringComparison.Ordinal).ToUpperInvariant());
}
