using System.CommandLine;
using System.CommandLine.Invocation;
using Headwise.Cli.Commands;
using Spectre.Console;

namespace Headwise.Cli;

/// <summary>
/// The <c>headwise</c> command line: builds the commands, runs the one asked for, and turns every failure into one
/// line on <c>error</c> with an exit code (<see cref="ExitCodes"/>). Tests call <see cref="RunAsync"/> in-process
/// with a console that writes to a string.
/// </summary>
public static class CliApp
{
    public static async Task<int> RunAsync(string[] args, IAnsiConsole console, TextWriter error, CancellationToken cancellationToken = default)
    {
        var server = new ServerOption();
        var root = new RootCommand("headwise: multi-head attention on an Orleans cluster, one grain per head.")
        {
            ModelsCommand.Create(server, console),
            GetCommand.Create(server, console),
            CreateCommand.Create(server, console),
            ImportCommand.Create(server, console),
            ForwardCommand.Create(server, console),
            DecodeCommand.Create(server, console),
            DeleteCommand.Create(server, console),
            RebalanceCommand.Create(server, console),
        };
        root.Options.Add(server.Option);
        root.Options.Add(server.ApiKeyOption);

        var parseResult = root.Parse(args);
        if (parseResult.Action is ParseErrorAction)
        {
            error.WriteLine(ErrorLine.ForParseErrors(parseResult.Errors.Select(e => e.Message)));
            return ExitCodes.Usage;
        }

        var configuration = new InvocationConfiguration
        {
            Output = console.Profile.Out.Writer,
            Error = error,
            EnableDefaultExceptionHandler = false,
        };
        try
        {
            return await parseResult.InvokeAsync(configuration, cancellationToken);
        }
        catch (Exception exception)
        {
            var (line, exitCode) = ErrorLine.Describe(exception, TryAddress(server, parseResult));
            error.WriteLine(line);
            return exitCode;
        }
    }

    private static Uri? TryAddress(ServerOption server, ParseResult parseResult)
    {
        try
        {
            return server.Address(parseResult);
        }
        catch (UsageException)
        {
            return null;
        }
    }
}
