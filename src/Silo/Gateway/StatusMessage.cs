using System.Text.RegularExpressions;

namespace Headwise.Silo.Gateway;

/// <summary>
/// The last guard on what an error status carries: a quoted value ('…') over <see cref="Contracts.EchoedValue.MaxChars"/>
/// characters is cut there, control characters become '?', and the whole message stops at <see cref="MaxChars"/>. Messages
/// that quote a caller's names through <see cref="Contracts.EchoedValue"/> are short already; this catches the rest (the
/// status travels in an HTTP/2 trailer, and a multi-megabyte one would fail the call instead of explaining it).
/// </summary>
internal static partial class StatusMessage
{
    public const int MaxChars = 1000;

    public static string Bounded(string message)
    {
        if (message.Length <= Contracts.EchoedValue.MaxChars && !message.AsSpan().ContainsAnyInRange('\u0000', '\u001f')) return message;
        string quoted = LongQuote().Replace(message, m => $"'{m.Groups[1].Value}… ({m.Length - 2} characters)'");
        string printable = string.Create(quoted.Length, quoted, (span, source) =>
        {
            for (int i = 0; i < source.Length; i++) span[i] = char.IsControl(source[i]) ? '?' : source[i];
        });
        return printable.Length <= MaxChars ? printable : printable[..(MaxChars - 1)] + "…";
    }

    // Longer than an EchoedValue quote (200 characters and its "… (N characters)" tail), so those pass untouched.
    [GeneratedRegex("'([^']{200})[^']{57,}'")]
    private static partial Regex LongQuote();
}
