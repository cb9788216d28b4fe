using System.CommandLine;
using Spectre.Console;

namespace Headwise.Cli.Commands;

/// <summary><c>headwise delete NAME</c>: removes a model and its weights.</summary>
internal static class DeleteCommand
{
    public static Command Create(ServerOption server, IAnsiConsole console)
    {
        var name = new Argument<string>("NAME") { Description = "the model to remove" }.ValidatedAsModelName();
        var command = new Command("delete", "Remove a model and its weights.") { name };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            string model = parseResult.GetRequiredValue(name);
            await using var client = server.Connect(parseResult);
            await client.DeleteModelAsync(model, cancellationToken);
            console.WriteLine($"deleted model '{model}'.");
            return ExitCodes.Ok;
        });
        return command;
    }
}
