using System.Xml.Linq;
using static Headwise.DeployTests.Manifests;

namespace Headwise.DeployTests;

/// <summary>
/// The Dockerfile cannot be built here (no container engine), so these read it: a multi-stage build of the silo
/// that restores from the project files alone, and a runtime image that runs it as a non-root user on the ports
/// the Deployment declares. Also: scripts/local-cluster.sh parses.
/// </summary>
public sealed class DockerfileTests
{
    private static readonly string[] Lines = File.ReadAllLines(Repository.PathOf("Dockerfile"))
        .Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();

    private static int IndexOf(Func<string, bool> predicate, string what)
    {
        var index = Array.FindIndex(Lines, l => predicate(l));
        Assert.True(index >= 0, $"the Dockerfile has no {what}");
        return index;
    }

    [Fact]
    public void Builds_with_the_SDK_and_runs_on_the_ASP_NET_runtime_image()
    {
        var froms = Lines.Where(l => l.StartsWith("FROM ", StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.Equal(2, froms.Count);
        Assert.StartsWith("FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build", froms[0], StringComparison.OrdinalIgnoreCase);
        Assert.StartsWith("FROM mcr.microsoft.com/dotnet/aspnet:10.0", froms[1], StringComparison.OrdinalIgnoreCase);
        Assert.Contains(Lines, l => l.StartsWith("COPY --from=build /app", StringComparison.Ordinal));
    }

    [Fact]
    public void Restores_from_the_project_files_of_the_silo_and_everything_it_references_before_copying_sources()
    {
        var restore = IndexOf(l => l.StartsWith("RUN dotnet restore", StringComparison.Ordinal), "RUN dotnet restore");
        var copiedBefore = Lines.Take(restore).Where(l => l.StartsWith("COPY ", StringComparison.Ordinal))
            .SelectMany(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).SkipLast(1)).ToHashSet();
        Assert.All(copiedBefore, source => Assert.Matches(@"(\.csproj|\.props|global\.json)$", source));
        foreach (var file in new[] { "global.json", "Directory.Build.props", "Directory.Packages.props" })
            Assert.Contains(file, copiedBefore);
        foreach (var project in ProjectClosure("src/Silo/Headwise.Silo.csproj"))
            Assert.True(copiedBefore.Contains(project), $"{project} (referenced by the silo) must be copied before the restore");

        var publish = IndexOf(l => l.StartsWith("RUN dotnet publish", StringComparison.Ordinal), "RUN dotnet publish");
        Assert.Matches(@"dotnet publish src/Silo\S* -c Release -o /app", Lines[publish]);
        foreach (var project in ProjectClosure("src/Silo/Headwise.Silo.csproj"))
        {
            var directory = Path.GetDirectoryName(project)!.Replace('\\', '/') + "/";
            Assert.True(Lines.Skip(restore).Take(publish - restore).Any(l => l.StartsWith($"COPY {directory} ", StringComparison.Ordinal)),
                $"the sources of {directory} must be copied between the restore and the publish");
        }
    }

    [Fact]
    public void Runs_the_silo_as_the_non_root_app_user_on_the_deployment_s_ports()
    {
        var runtime = Array.FindLastIndex(Lines, l => l.StartsWith("FROM ", StringComparison.Ordinal));
        var stage = Lines.Skip(runtime).ToList();
        Assert.Contains("USER $APP_UID", stage);
        Assert.Contains("ENTRYPOINT [\"dotnet\", \"Headwise.Silo.dll\"]", stage);

        var exposed = stage.Where(l => l.StartsWith("EXPOSE ", StringComparison.Ordinal))
            .SelectMany(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)).Select(int.Parse).ToHashSet();
        var declared = Arr(Containers(Manifests.Base.Single("Deployment", "headwise-silo")).Single(), "ports")
            .Select(p => int.Parse(Str(p, "containerPort")!)).ToHashSet();
        Assert.Equal(declared, exposed);

        // The Deployment's runAsUser is the image's app user (1654 in the .NET images).
        Assert.Equal("1654", Str(Manifests.Base.Single("Deployment", "headwise-silo"), "spec.template.spec.securityContext.runAsUser"));
    }

    [Fact]
    public void Dockerignore_keeps_build_outputs_and_the_repository_out_of_the_context()
    {
        var ignored = File.ReadAllLines(Repository.PathOf(".dockerignore")).Select(l => l.Trim()).ToHashSet();
        Assert.Contains("**/bin/", ignored);
        Assert.Contains("**/obj/", ignored);
        Assert.Contains(".git/", ignored);
        Assert.DoesNotContain(ignored, l => l is "src" or "src/" or "src/**" or "*.csproj" or "*.props" or "global.json");
    }

    [Fact]
    public void Local_cluster_script_parses_and_rejects_a_bad_count_before_starting_anything()
    {
        var script = Repository.PathOf("scripts/local-cluster.sh");
        var (exit, _, stderr) = Repository.Run("bash", ["-n", script], "bash is needed.");
        Assert.True(exit == 0, stderr);
        (exit, _, stderr) = Repository.Run("bash", [script, "--no-build", "zero"], "bash is needed.");
        Assert.Equal(2, exit);
        Assert.Contains("N must be a positive number", stderr);
    }

    /// <summary>The project and every project it references, transitively, as paths from the repository root.</summary>
    private static IReadOnlyList<string> ProjectClosure(string project)
    {
        var seen = new List<string>();
        var pending = new Stack<string>([project]);
        while (pending.Count > 0)
        {
            var current = pending.Pop();
            if (seen.Contains(current)) continue;
            seen.Add(current);
            var directory = Path.GetDirectoryName(Repository.PathOf(current))!;
            foreach (var reference in XDocument.Load(Repository.PathOf(current)).Descendants("ProjectReference"))
            {
                var full = Path.GetFullPath(Path.Combine(directory, reference.Attribute("Include")!.Value.Replace('\\', '/')));
                pending.Push(Path.GetRelativePath(Repository.Root, full).Replace('\\', '/'));
            }
        }
        return seen;
    }
}
