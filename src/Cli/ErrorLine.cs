using System.Text;
using Grpc.Core;
using Headwise.Contracts;

namespace Headwise.Cli;

/// <summary>
/// Turns any failure into the one line <c>headwise</c> prints on stderr ("error: NOT_FOUND: model 'x' not found.")
/// and the exit code that goes with it. Stack traces are never shown.
/// </summary>
public static class ErrorLine
{
    public static (string Line, int ExitCode) Describe(Exception exception, Uri? server = null) => exception switch
    {
        UsageException usage => (Format(usage.Message), ExitCodes.Usage),
        FileNotFoundException missing => (Format($"file '{missing.FileName}' not found."), ExitCodes.Usage),
        DirectoryNotFoundException missing => (Format(missing.Message), ExitCodes.Usage),
        HeadwiseException { Code: ErrorCode.Unavailable, InnerException: RpcException { Status.DebugException: not null } } unreachable =>
            (Format($"{CodeName(unreachable.Code)}: {unreachable.Message}" + UnreachableHint(server)), ExitCodes.Failed),
        HeadwiseException headwise => (Format($"{CodeName(headwise.Code)}: {headwise.Message}"), ExitCodes.Failed),
        OperationCanceledException => ("error: cancelled.", ExitCodes.Cancelled),
        _ => (Format(exception.Message), ExitCodes.Failed),
    };

    /// <summary>The command line did not parse: every parse error on one line, with a pointer to the help.</summary>
    public static string ForParseErrors(IEnumerable<string> messages) =>
        Format(string.Join(" ", messages) + " (see 'headwise --help')");

    /// <summary>The gRPC spelling of a code: NotFound → NOT_FOUND.</summary>
    public static string CodeName(ErrorCode code)
    {
        string name = code.ToString();
        var builder = new StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i])) builder.Append('_');
            builder.Append(char.ToUpperInvariant(name[i]));
        }
        return builder.ToString();
    }

    /// <summary>Said when the transport, not the cluster, failed: most often no silo listens at the address.</summary>
    private static string UnreachableHint(Uri? server) =>
        server is null ? "" : $" (is a Headwise silo serving gRPC at {server.OriginalString}? Set --server or HEADWISE_SERVER.)";

    /// <summary>"error: " and the message folded onto one line.</summary>
    private static string Format(string message)
    {
        string oneLine = string.Join(' ', message.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return "error: " + oneLine;
    }
}
