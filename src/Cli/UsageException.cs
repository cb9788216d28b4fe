namespace Headwise.Cli;

/// <summary>
/// A mistake on the command line or in a local file it names, found before anything is sent to the server.
/// <c>headwise</c> prints its message as one line and exits with <see cref="ExitCodes.Usage"/>.
/// </summary>
public sealed class UsageException(string message, Exception? inner = null) : Exception(message, inner);
