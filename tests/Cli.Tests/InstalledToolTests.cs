using Headwise.TestSupport;

namespace Headwise.Cli.Tests;

/// <summary>
/// The packed Headwise.Cli installs as a .NET tool from the local package folder and its <c>headwise</c> command
/// talks to a real silo: what a user gets from <c>dotnet tool install</c>.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class InstalledToolTests(SiloFixture silo) : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("headwise-tool-").FullName;

    [Fact]
    public async Task The_installed_tool_lists_the_demo_model()
    {
        PackedPackages.Nupkg("Headwise.Cli");
        string tools = Path.Combine(_work, "tools");
        // Only the local folder as a source, and a packages folder of its own: the global cache could otherwise hand
        // back an older build of the same version.
        string config = PackedPackages.WriteIsolatedNuGetConfig(_work, PackedPackages.Folder);
        var install = await ChildProcess.RunAsync("dotnet",
            ["tool", "install", "Headwise.Cli", "--tool-path", tools, "--version", PackedPackages.Version, "--configfile", config],
            TimeSpan.FromMinutes(3), _work, new Dictionary<string, string> { ["NUGET_PACKAGES"] = Path.Combine(_work, "packages") });
        Assert.True(install.ExitCode == 0, install.ToString());

        var models = await ChildProcess.RunAsync(Path.Combine(tools, "headwise"), ["models", "--server", silo.Server],
            TimeSpan.FromMinutes(1), _work);
        Assert.True(models.ExitCode == 0, models.ToString());
        Assert.Contains("demo", models.Output);
    }

    public void Dispose() => Directory.Delete(_work, recursive: true);
}
