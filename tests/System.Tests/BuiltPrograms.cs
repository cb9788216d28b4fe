using System.Reflection;

namespace Headwise.SystemTests;

/// <summary>Where the build put the programs these tests start as processes.</summary>
public static class BuiltPrograms
{
    public static string SiloDll => Path.GetFullPath(Metadata("SiloDll"));
    public static string CliDll => Path.GetFullPath(Metadata("CliDll"));
    /// <summary>The repository's root, for what is not built: examples/, the .proto.</summary>
    public static string Repository => Path.GetFullPath(Metadata("Repository"));

    private static string Metadata(string key) =>
        typeof(BuiltPrograms).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value
        ?? throw new InvalidOperationException($"assembly metadata {key} is missing.");
}
