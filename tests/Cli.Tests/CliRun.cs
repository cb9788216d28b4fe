using System.Text.RegularExpressions;
using Spectre.Console;

namespace Headwise.Cli.Tests;

/// <summary>What one in-process run of <c>headwise</c> returned and printed.</summary>
public sealed record CliRun(int ExitCode, string Out, string Error)
{
    /// <summary>Runs <see cref="CliApp.RunAsync"/> with a plain-text console 200 columns wide.</summary>
    public static async Task<CliRun> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 200;
        int exitCode = await CliApp.RunAsync(args, console, error);
        return new CliRun(exitCode, output.ToString(), error.ToString());
    }

    /// <summary>The cells of each table row whose first cell is an integer and that has <paramref name="columns"/> cells.</summary>
    public IReadOnlyList<string[]> Rows(int columns) => Out
        .Split('\n')
        .Select(line => line.Split('│', '|').Select(cell => cell.Trim()).ToArray())
        .Where(cells => cells.Length == columns + 2 && int.TryParse(cells[1], out _))
        .Select(cells => cells[1..^1])
        .ToArray();

    /// <summary>The value printed after <paramref name="label"/> on its own line of a grid.</summary>
    public string? Field(string label) =>
        Regex.Match(Out, $@"^\s*{Regex.Escape(label)}\s+(.+?)\s*$", RegexOptions.Multiline) is { Success: true } match ? match.Groups[1].Value : null;

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Out}\n--- stderr\n{Error}";
}
