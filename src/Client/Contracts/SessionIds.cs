using System.Security.Cryptography;
using System.Text;

namespace Headwise.Contracts;

/// <summary>
/// Decode session ids: 32 lowercase hex digits, made by whoever opens the session. An id is a bearer token (whoever
/// holds it can step or close the session), so it stays with the caller and the gateway: inside the cluster the session
/// is the grain <see cref="GrainKey"/> of it, and that digest is all Orleans' spans, logs and error messages can show.
/// </summary>
public static class SessionIds
{
    public static string New() => Guid.NewGuid().ToString("N");

    /// <summary>
    /// The key of the session's decode session grain: the first 32 hex digits of SHA-256 of the id. Not a
    /// secret: a gateway hashes whatever id it is sent, so knowing the digest does not let anyone reach the session.
    /// </summary>
    public static string GrainKey(string session) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(Validate(session))))[..32];

    /// <summary>The id, or InvalidArgument naming the field when it is not one.</summary>
    public static string Validate(string? session, string field = "session")
    {
        if (string.IsNullOrEmpty(session) || session.Length != 32 || !session.All(char.IsAsciiHexDigitLower))
            throw HeadwiseException.Invalid($"{field} is '{EchoedValue.Of(session)}'; a session id is the 32 lowercase hex digits OpenSession returned.");
        return session;
    }
}
