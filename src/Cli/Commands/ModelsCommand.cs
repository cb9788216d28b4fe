using System.CommandLine;
using Spectre.Console;

namespace Headwise.Cli.Commands;

/// <summary><c>headwise models</c>: every model of the cluster, one row each.</summary>
internal static class ModelsCommand
{
    public static Command Create(ServerOption server, IAnsiConsole console)
    {
        var command = new Command("models", "List the models of the cluster.");
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            await using var client = server.Connect(parseResult);
            var models = await client.ListModelsAsync(cancellationToken);
            if (models.Count == 0)
            {
                console.WriteLine("no models.");
                return ExitCodes.Ok;
            }
            var table = new Table()
                .AddColumn("name")
                .AddColumn(new TableColumn("layers").RightAligned())
                .AddColumn(new TableColumn("model_dim").RightAligned())
                .AddColumn(new TableColumn("heads").RightAligned())
                .AddColumn(new TableColumn("kv heads").RightAligned())
                .AddColumn(new TableColumn("head_dim").RightAligned())
                .AddColumn("ready");
            foreach (var model in models.OrderBy(m => m.Name, StringComparer.Ordinal))
            {
                var spec = model.Spec;
                table.AddRow(
                    new Text(model.Name),
                    new Text(spec.LayerCount.ToString()),
                    new Text(spec.ModelDim.ToString()),
                    new Text(spec.HeadCount.ToString()),
                    new Text(spec.KvHeadCount.ToString()),
                    new Text(spec.HeadDim.ToString()),
                    new Text(model.Ready ? "yes" : "no"));
            }
            console.Write(table);
            return ExitCodes.Ok;
        });
        return command;
    }
}
