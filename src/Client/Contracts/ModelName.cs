using System.Buffers;

namespace Headwise.Contracts;

/// <summary>
/// Model names become part of grain keys ("{model}/{layer}/{group}") and storage keys, so they are kept to a
/// small, printable alphabet with no separators.
/// </summary>
public static class ModelName
{
    public const int MaxLength = 128;

    private static readonly SearchValues<char> Allowed =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

    /// <summary>Throws InvalidArgument naming <paramref name="field"/> unless the name is usable.</summary>
    public static string Validate(string? name, string field = "name")
    {
        if (string.IsNullOrEmpty(name))
            throw HeadwiseException.Invalid($"{field} is empty; give the model a name.");
        if (name.Length > MaxLength)
            throw HeadwiseException.Invalid($"{field} has {name.Length} characters; at most {MaxLength} are allowed.");
        if (name.AsSpan().ContainsAnyExcept(Allowed))
            throw HeadwiseException.Invalid($"{field} may contain only letters, digits, '.', '_' and '-'.");
        if (name is "." or ".." || name[0] == '.')
            throw HeadwiseException.Invalid($"{field} must not start with '.'.");
        return name;
    }
}
