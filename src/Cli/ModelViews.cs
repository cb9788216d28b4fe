using System.Globalization;
using Headwise.Contracts;
using Spectre.Console;

namespace Headwise.Cli;

/// <summary>How a model, its spec and its head placements are shown on the console.</summary>
internal static class ModelViews
{
    /// <summary>One model's name, resolved spec and readiness, one field a line.</summary>
    public static void WriteModel(IAnsiConsole console, ModelDescription model)
    {
        var spec = model.Spec;
        WriteFields(console,
        [
            ("model", model.Name),
            ("model_dim", spec.ModelDim.ToString(CultureInfo.InvariantCulture)),
            ("heads", spec.HeadCount.ToString(CultureInfo.InvariantCulture)),
            ("kv heads", spec.KvHeadCount.ToString(CultureInfo.InvariantCulture)),
            ("head_dim", spec.HeadDim.ToString(CultureInfo.InvariantCulture)),
            ("layers", spec.LayerCount.ToString(CultureInfo.InvariantCulture)),
            ("bias", (spec.Bias, spec.HasOutputBias) switch
            {
                (true, true) => "yes",
                (false, false) => "no",
                (true, false) => "q, k, v (none on the output)",
                (false, true) => "output only",
            }),
            ("scale", spec.Scale.ToString("G6", CultureInfo.InvariantCulture)),
            ("window", spec.Window == 0 ? "none" : spec.Window.ToString(CultureInfo.InvariantCulture)),
            ("rope", spec.HasRope
                ? $"theta {spec.RopeTheta.ToString("G6", CultureInfo.InvariantCulture)}, {spec.RopeDim.ToString(CultureInfo.InvariantCulture)} dims{Scaling(spec.RopeScaling)}"
                : "none"),
            ("ready", model.Ready ? "yes" : "no (upload weights with 'headwise import')"),
        ]);
    }

    private static string Scaling(RopeScaling? scaling) => scaling is null ? ""
        : scaling.Type == RopeScaling.Llama3
            ? string.Create(CultureInfo.InvariantCulture,
                $", llama3 scaling (factor {scaling.Factor:G6}, low {scaling.LowFreqFactor:G6}, high {scaling.HighFreqFactor:G6}, original {scaling.OriginalMaxPositions})")
            : string.Create(CultureInfo.InvariantCulture, $", {scaling.Type} scaling (factor {scaling.Factor:G6})");

    /// <summary>"label  value" lines, the values aligned in one column.</summary>
    public static void WriteFields(IAnsiConsole console, IReadOnlyList<(string Label, string Value)> fields)
    {
        int width = fields.Max(f => f.Label.Length) + 2;
        foreach (var (label, value) in fields)
            console.WriteLine(label.PadRight(width) + value);
    }

    /// <summary>Where each head group of each layer runs.</summary>
    public static void WritePlacements(IAnsiConsole console, ModelDescription model)
    {
        if (model.Heads.Length == 0)
        {
            console.WriteLine("no head placements yet.");
            return;
        }
        var table = new Table()
            .AddColumn(new TableColumn("layer").RightAligned())
            .AddColumn(new TableColumn("group").RightAligned())
            .AddColumn("heads")
            .AddColumn("silo");
        int groupSize = model.Spec.HeadCount / Math.Max(1, model.Spec.KvHeadCount);
        foreach (var head in model.Heads.OrderBy(h => h.Layer).ThenBy(h => h.Group))
        {
            int first = head.Group * groupSize;
            table.AddRow(
                new Text(head.Layer.ToString()),
                new Text(head.Group.ToString()),
                new Text(HeadRange(first, first + groupSize - 1)),
                new Text(head.Silo));
        }
        console.Write(table);
    }

    /// <summary>"3" for one head, "4-7" for a group of consecutive query heads.</summary>
    public static string HeadRange(int first, int last) => first == last ? first.ToString() : $"{first}-{last}";

    /// <summary>The query heads of a report: a range when they are consecutive, else a list.</summary>
    public static string HeadList(IReadOnlyList<int> heads)
    {
        if (heads.Count == 0) return "";
        bool consecutive = true;
        for (int i = 1; i < heads.Count; i++)
            consecutive &= heads[i] == heads[i - 1] + 1;
        return consecutive ? HeadRange(heads[0], heads[^1]) : string.Join(",", heads);
    }

    /// <summary>"[2, 16, 768]".</summary>
    public static string Shape(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";
}
