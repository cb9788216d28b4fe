using System.CommandLine;
using Spectre.Console;

namespace Headwise.Cli.Commands;

/// <summary><c>headwise rebalance [--model NAME]</c>: moves heads onto silos that joined (or off silos that left).</summary>
internal static class RebalanceCommand
{
    public static Command Create(ServerOption server, IAnsiConsole console)
    {
        var model = new Option<string>("--model") { Description = "only this model [default: every model]", HelpName = "NAME" }.ValidatedAsModelName();
        var command = new Command("rebalance", "Spread the heads again over the silos now in the cluster.") { model };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            await using var client = server.Connect(parseResult);
            int moved = await client.RebalanceAsync(parseResult.GetValue(model), cancellationToken);
            console.WriteLine($"moved {moved} head group{(moved == 1 ? "" : "s")}.");
            return ExitCodes.Ok;
        });
        return command;
    }
}
