using System.IO.Compression;
using System.Text.Json;
using System.Xml.Linq;
using Headwise.TestSupport;

namespace Headwise.Client.Tests;

/// <summary>
/// The packed Headwise.Client is the gRPC SDK alone: neither its .nuspec nor the restored dependency closure of an
/// application that references only it holds any Microsoft.Orleans.* package (no code generator, Roslyn or Newtonsoft.Json).
/// </summary>
public sealed class ClientPackageClosureTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("headwise-closure-").FullName;

    [Fact]
    public void The_nuspec_depends_on_gRPC_and_no_Orleans_package()
    {
        var dependencies = NuspecDependencies(PackedPackages.Nupkg("Headwise.Client"));
        Assert.Contains("Grpc.Net.Client", dependencies);
        Assert.Contains("Google.Protobuf", dependencies);
        Assert.DoesNotContain(dependencies, id => id.StartsWith("Microsoft.Orleans", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void The_Orleans_transport_package_depends_on_Headwise_Client_and_ships_the_grain_contracts()
    {
        string nupkg = PackedPackages.Nupkg("Headwise.Client.Orleans");
        var dependencies = NuspecDependencies(nupkg);
        Assert.Contains("Headwise.Client", dependencies);
        Assert.Contains("Microsoft.Orleans.Client", dependencies);
        using var zip = ZipFile.OpenRead(nupkg);
        Assert.Contains(zip.Entries, entry => entry.FullName == "lib/net10.0/Headwise.Contracts.dll");
    }

    [Fact]
    public async Task An_application_referencing_only_Headwise_Client_restores_no_Orleans_package()
    {
        string package = PackedPackages.Nupkg("Headwise.Client");
        // The repository's restore put every dependency of Headwise.Client in the global packages folder, which reads as a
        // feed: the restore needs no network, and its own empty packages folder cannot serve a stale Headwise.Client.
        string config = PackedPackages.WriteIsolatedNuGetConfig(_work, PackedPackages.Folder, PackedPackages.GlobalPackagesFolder);
        File.WriteAllText(Path.Combine(_work, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Headwise.Client" Version="{PackedPackages.Version}" />
              </ItemGroup>
            </Project>
            """);
        // An empty Directory.Build.props and Directory.Packages.props stop MSBuild from looking further up for the repository's.
        File.WriteAllText(Path.Combine(_work, "Directory.Build.props"), "<Project />");
        File.WriteAllText(Path.Combine(_work, "Directory.Packages.props"), "<Project />");

        var restore = await ChildProcess.RunAsync("dotnet",
            ["restore", "Consumer.csproj", "--configfile", config, "--packages", Path.Combine(_work, "packages")],
            TimeSpan.FromMinutes(3), _work);
        Assert.True(restore.ExitCode == 0, restore.ToString());

        using var assets = JsonDocument.Parse(File.ReadAllText(Path.Combine(_work, "obj", "project.assets.json")));
        var libraries = assets.RootElement.GetProperty("libraries").EnumerateObject().Select(library => library.Name.Split('/')[0]).ToArray();
        Assert.Contains("Headwise.Client", libraries);
        Assert.Contains("Grpc.Net.Client", libraries);
        var orleans = libraries.Where(id => id.StartsWith("Microsoft.Orleans", StringComparison.OrdinalIgnoreCase)
                                            || id.StartsWith("Microsoft.CodeAnalysis", StringComparison.OrdinalIgnoreCase)
                                            || id.Equals("Newtonsoft.Json", StringComparison.OrdinalIgnoreCase)).ToArray();
        Assert.True(orleans.Length == 0, $"Headwise.Client's closure holds {string.Join(", ", orleans)}; it must stay gRPC only.");

        // The restored package is the one just packed, not one of the same version from elsewhere.
        string restored = Path.Combine(_work, "packages", "headwise.client", PackedPackages.Version, $"headwise.client.{PackedPackages.Version}.nupkg");
        Assert.Equal(await File.ReadAllBytesAsync(package), await File.ReadAllBytesAsync(restored));
    }

    private static string[] NuspecDependencies(string nupkg)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        var nuspec = zip.Entries.Single(entry => entry.FullName.EndsWith(".nuspec", StringComparison.Ordinal));
        using var stream = nuspec.Open();
        return XDocument.Load(stream).Descendants().Where(element => element.Name.LocalName == "dependency")
            .Select(element => (string)element.Attribute("id")!).ToArray();
    }

    public void Dispose() => Directory.Delete(_work, recursive: true);
}
