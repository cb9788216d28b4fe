using Headwise.Silo;
using Microsoft.AspNetCore.Builder;

namespace Headwise.Cli.Tests;

/// <summary>A silo with Headwise__ApiKey: the CLI sends the key from --api-key or HEADWISE_API_KEY.</summary>
public sealed class ApiKeyCliTests : IAsyncLifetime
{
    private const string Key = "cli-test-key-0123456789";
    private WebApplication? _app;
    private string _server = "";

    public async Task InitializeAsync()
    {
        int[] ports = SiloFixture.FreePorts(4);
        _app = HeadwiseSilo.Build(
        [
            $"--Headwise:SiloPort={ports[0]}", $"--Headwise:GatewayPort={ports[1]}",
            $"--Headwise:GrpcPort={ports[2]}", $"--Headwise:WebPort={ports[3]}",
            "--Headwise:DemoModel=false", $"--Headwise:ApiKey={Key}", "--Logging:LogLevel:Default=Warning",
        ]);
        await _app.StartAsync();
        _server = $"http://127.0.0.1:{ports[2]}";
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    [Fact]
    public async Task Create_needs_the_key_from_the_option_or_the_environment()
    {
        var refused = await CliRun.RunAsync("create", "keyed", "--model-dim", "64", "--heads", "4", "--server", _server);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("UNAUTHENTICATED", refused.Error);
        CliTests.AssertOneErrorLine(refused);

        var created = await CliRun.RunAsync("create", "keyed", "--model-dim", "64", "--heads", "4", "--server", _server, "--api-key", Key);
        Assert.True(created.ExitCode == 0, created.ToString());

        string? before = Environment.GetEnvironmentVariable("HEADWISE_API_KEY");
        Environment.SetEnvironmentVariable("HEADWISE_API_KEY", Key);
        try
        {
            var deleted = await CliRun.RunAsync("delete", "keyed", "--server", _server);
            Assert.True(deleted.ExitCode == 0, deleted.ToString());
        }
        finally
        {
            Environment.SetEnvironmentVariable("HEADWISE_API_KEY", before);
        }
    }
}
