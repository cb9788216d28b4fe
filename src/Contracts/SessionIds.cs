namespace Headwise.Contracts;

/// <summary>Decode session ids: 32 lowercase hex digits, made by whoever opens the session.</summary>
public static class SessionIds
{
    public static string New() => Guid.NewGuid().ToString("N");

    /// <summary>The id, or InvalidArgument naming the field when it is not one.</summary>
    public static string Validate(string? session, string field = "session")
    {
        if (string.IsNullOrEmpty(session) || session.Length != 32 || !session.All(char.IsAsciiHexDigitLower))
            throw HeadwiseException.Invalid($"{field} is '{EchoedValue.Of(session)}'; a session id is the 32 lowercase hex digits OpenSession returned.");
        return session;
    }
}
