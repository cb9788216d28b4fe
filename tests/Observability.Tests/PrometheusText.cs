using System.Globalization;
using System.Text.RegularExpressions;

namespace Headwise.Observability.Tests;

/// <summary>One sample of a Prometheus text exposition: name{labels} value.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>
/// A strict reader of the Prometheus text format 0.0.4, independent of the exporter: it throws on any line it
/// does not understand, on a sample before its family's TYPE, and on histograms whose buckets do not add up.
/// </summary>
public static partial class PrometheusText
{
    [GeneratedRegex(@"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$")]
    private static partial Regex TypeLine();

    [GeneratedRegex(@"^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$")]
    private static partial Regex HelpLine();

    [GeneratedRegex(@"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"\G([a-zA-Z_][a-zA-Z0-9_]*)=""((?:[^""\\]|\\.)*)"",?")]
    private static partial Regex Label();

    public static (IReadOnlyDictionary<string, string> Types, IReadOnlyList<PrometheusSample> Samples) Parse(string text)
    {
        var types = new Dictionary<string, string>();
        var samples = new List<PrometheusSample>();
        foreach (var (line, number) in text.Split('\n').Select((l, i) => (l.TrimEnd('\r'), i + 1)))
        {
            if (line.Length == 0) continue;
            if (line.StartsWith('#'))
            {
                if (TypeLine().Match(line) is { Success: true } type)
                {
                    if (!types.TryAdd(type.Groups[1].Value, type.Groups[2].Value))
                        throw new FormatException($"line {number}: a second TYPE for {type.Groups[1].Value}");
                }
                else if (!HelpLine().IsMatch(line) && !line.StartsWith("# EOF", StringComparison.Ordinal))
                    throw new FormatException($"line {number}: unknown comment '{line}'");
                continue;
            }
            var sample = SampleLine().Match(line);
            if (!sample.Success) throw new FormatException($"line {number}: not a sample: '{line}'");
            string name = sample.Groups[1].Value;
            if (Family(name, types) is null) throw new FormatException($"line {number}: {name} has no TYPE before it");
            samples.Add(new PrometheusSample(name, Labels(sample.Groups[3].Value, number), Value(sample.Groups[4].Value, number)));
        }
        CheckHistograms(types, samples);
        return (types, samples);
    }

    private static string? Family(string name, Dictionary<string, string> types)
    {
        if (types.ContainsKey(name)) return name;
        foreach (var suffix in new[] { "_bucket", "_sum", "_count", "_total", "_created" })
            if (name.EndsWith(suffix, StringComparison.Ordinal) && types.ContainsKey(name[..^suffix.Length]))
                return name[..^suffix.Length];
        return null;
    }

    private static Dictionary<string, string> Labels(string text, int number)
    {
        var labels = new Dictionary<string, string>();
        int at = 0;
        while (at < text.Length)
        {
            var label = Label().Match(text, at);
            if (!label.Success || label.Index != at) throw new FormatException($"line {number}: bad labels '{text}'");
            if (!labels.TryAdd(label.Groups[1].Value, Regex.Unescape(label.Groups[2].Value)))
                throw new FormatException($"line {number}: label {label.Groups[1].Value} twice");
            at += label.Length;
        }
        return labels;
    }

    private static double Value(string text, int number) => text switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        "NaN" => double.NaN,
        _ => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new FormatException($"line {number}: bad value '{text}'"),
    };

    // Per series: cumulative buckets never decrease, the +Inf bucket equals _count, and _sum is there.
    private static void CheckHistograms(Dictionary<string, string> types, List<PrometheusSample> samples)
    {
        foreach (var family in types.Where(t => t.Value == "histogram").Select(t => t.Key))
        {
            var series = samples.Where(s => s.Name == family + "_bucket")
                .GroupBy(s => Key(s.Labels.Where(l => l.Key != "le")));
            foreach (var buckets in series)
            {
                var ordered = buckets.OrderBy(b => Value(b.Labels["le"], 0)).ToList();
                for (int i = 1; i < ordered.Count; i++)
                    if (ordered[i].Value < ordered[i - 1].Value)
                        throw new FormatException($"{family}{{{buckets.Key}}}: bucket le={ordered[i].Labels["le"]} is below the one before it");
                if (ordered[^1].Labels["le"] != "+Inf") throw new FormatException($"{family}{{{buckets.Key}}}: no +Inf bucket");
                var count = samples.SingleOrDefault(s => s.Name == family + "_count" && Key(s.Labels) == buckets.Key)
                    ?? throw new FormatException($"{family}{{{buckets.Key}}}: no _count");
                if (count.Value != ordered[^1].Value) throw new FormatException($"{family}{{{buckets.Key}}}: +Inf bucket {ordered[^1].Value} ≠ count {count.Value}");
                if (!samples.Any(s => s.Name == family + "_sum" && Key(s.Labels) == buckets.Key))
                    throw new FormatException($"{family}{{{buckets.Key}}}: no _sum");
            }
        }
    }

    private static string Key(IEnumerable<KeyValuePair<string, string>> labels) =>
        string.Join(',', labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}"));
}
