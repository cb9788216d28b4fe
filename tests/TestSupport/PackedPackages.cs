using System.Reflection;

namespace Headwise.TestSupport;

/// <summary>
/// The NuGet packages `dotnet pack` wrote to artifacts/packages (scripts/test.sh packs them once, before the tests),
/// at the version Directory.Build.props gives every project.
/// </summary>
public static class PackedPackages
{
    /// <summary>The repository's root: the directory holding Cluster.sln above the test's output.</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>artifacts/packages under the root.</summary>
    public static string Folder => Path.Combine(RepositoryRoot, "artifacts", "packages");

    /// <summary>The packages' version: the informational version of this build without its source revision.</summary>
    public static string Version { get; } =
        typeof(PackedPackages).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Split('+')[0];

    /// <summary>The path of package <paramref name="id"/>, or a failure that says how to make it.</summary>
    public static string Nupkg(string id)
    {
        string path = System.IO.Path.Combine(Folder, $"{id}.{Version}.nupkg");
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"{path} is missing: run `dotnet pack Cluster.sln -c Debug --no-build -o artifacts/packages` after the build (scripts/test.sh does).", path);
        return path;
    }

    /// <summary>
    /// A nuget.config that reads packages only from <paramref name="packages"/> (the Headwise.* ones) and
    /// <paramref name="others"/> (every other id): nothing from the network, and no package of the same id and version
    /// from anywhere else (a global packages folder that once restored Headwise.Client) can stand in for the one just packed.
    /// </summary>
    public static string WriteIsolatedNuGetConfig(string directory, string packages, params string[] others)
    {
        string[] sources = [packages, .. others];
        var adds = sources.Select((source, i) => $"    <add key=\"source{i}\" value=\"{System.Security.SecurityElement.Escape(source)}\" />");
        var mappings = sources.Select((_, i) =>
            $"    <packageSource key=\"source{i}\"><package pattern=\"{(i == 0 ? "Headwise.*" : "*")}\" /></packageSource>");
        string path = System.IO.Path.Combine(directory, "nuget.config");
        File.WriteAllText(path, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
            {string.Join("\n", adds)}
              </packageSources>
              <packageSourceMapping>
            {string.Join("\n", mappings)}
              </packageSourceMapping>
            </configuration>
            """);
        return path;
    }

    /// <summary>The global packages folder the repository's own restore filled ($NUGET_PACKAGES, else ~/.nuget/packages).</summary>
    public static string GlobalPackagesFolder =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(System.IO.Path.Combine(directory.FullName, "Cluster.sln"))) return directory.FullName;
        throw new DirectoryNotFoundException($"no Cluster.sln above {AppContext.BaseDirectory}.");
    }
}
