using System.CommandLine;
using Spectre.Console;

namespace Headwise.Cli.Commands;

/// <summary><c>headwise get NAME</c>: one model's spec and the silo each of its head groups runs on.</summary>
internal static class GetCommand
{
    public static Command Create(ServerOption server, IAnsiConsole console)
    {
        var name = new Argument<string>("NAME") { Description = "the model" }.ValidatedAsModelName();
        var command = new Command("get", "Show a model's spec and where its heads run.") { name };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            await using var client = server.Connect(parseResult);
            var model = await client.GetModelAsync(parseResult.GetRequiredValue(name), cancellationToken);
            ModelViews.WriteModel(console, model);
            console.WriteLine();
            ModelViews.WritePlacements(console, model);
            return ExitCodes.Ok;
        });
        return command;
    }
}
