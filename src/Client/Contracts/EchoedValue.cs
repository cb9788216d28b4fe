using System.Text;

namespace Headwise.Contracts;

/// <summary>
/// A caller's value as an error message quotes it: at most <see cref="MaxChars"/> characters and no control
/// characters, so that a multi-megabyte name or prefix cannot make a multi-megabyte status (gRPC sends it as a
/// trailer) nor break a log line.
/// </summary>
public static class EchoedValue
{
    /// <summary>The most characters of one value a message quotes.</summary>
    public const int MaxChars = 200;

    /// <summary>The value itself when short and printable; else its first <see cref="MaxChars"/> characters with
    /// control characters as '?', followed by "… (N characters)".</summary>
    public static string Of(string? value)
    {
        if (value is null) return "";
        bool printable = !value.AsSpan().ContainsAnyInRange('\u0000', '\u001f') && !value.Contains('\u007f');
        if (value.Length <= MaxChars && printable) return value;
        var text = new StringBuilder(MaxChars + 24);
        foreach (char c in value.AsSpan(0, Math.Min(value.Length, MaxChars)))
            text.Append(char.IsControl(c) ? '?' : c);
        if (value.Length > MaxChars) text.Append($"… ({value.Length} characters)");
        return text.ToString();
    }
}
