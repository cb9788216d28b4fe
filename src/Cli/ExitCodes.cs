namespace Headwise.Cli;

/// <summary>What <c>headwise</c> returns to the shell.</summary>
public static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Ok = 0;

    /// <summary>The server answered with an error, could not be reached, or something else failed at run time.</summary>
    public const int Failed = 1;

    /// <summary>The command line or a local file it names is wrong; nothing was sent to the server.</summary>
    public const int Usage = 2;

    /// <summary>Interrupted (Ctrl+C), as shells report SIGINT.</summary>
    public const int Cancelled = 130;
}
