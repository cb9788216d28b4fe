namespace Headwise.Cli.Tests;

/// <summary>Command lines that are wrong before any server is involved, and a server that is not there.</summary>
public sealed class UsageTests
{
    [Theory]
    [InlineData("forward", "--tokens", "4")]                                       // --model is required
    [InlineData("forward", "--model", "demo")]                                     // neither --tokens nor --input
    [InlineData("forward", "--model", "demo", "--tokens", "4", "--input", "x.safetensors")]
    [InlineData("forward", "--model", "demo", "--tokens", "0")]
    [InlineData("forward", "--model", "demo", "--tokens", "many")]
    [InlineData("create", "x", "--model-dim", "10", "--heads", "3")]               // 10 is not divisible by 3
    [InlineData("create", "bad/name", "--model-dim", "8", "--heads", "2")]
    [InlineData("import", "w.safetensors", "--model", "x", "--layout", "gpt3")]
    [InlineData("import", "--model", "x")]                                         // neither FILE nor --hf
    [InlineData("import", "--hf", "no-such-checkpoint-dir", "--model", "x")]
    [InlineData("import", "--hf", ".", "--model", "x", "--layers", "3-1")]
    [InlineData("import", "--hf", ".", "--model", "x", "--layout", "gpt2")]        // --layout goes with FILE
    [InlineData("models", "--server", "not a url")]
    [InlineData("no-such-command")]
    [InlineData]
    public async Task A_bad_command_line_is_one_line_on_stderr_and_exit_2(params string[] args)
    {
        var run = await CliRun.RunAsync(args);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Equal("", run.Out);
        CliTests.AssertOneErrorLine(run);
    }

    [Fact]
    public async Task A_bad_spec_names_the_option()
    {
        var run = await CliRun.RunAsync("create", "x", "--model-dim", "10", "--heads", "3");

        Assert.Contains("--head-dim", run.Error);
    }

    [Fact]
    public async Task An_unreachable_server_is_one_line_UNAVAILABLE_and_exit_1()
    {
        int closedPort = SiloFixture.FreePorts(1)[0];

        var run = await CliRun.RunAsync("models", "--server", $"http://127.0.0.1:{closedPort}");

        Assert.Equal(1, run.ExitCode);
        CliTests.AssertOneErrorLine(run);
        Assert.StartsWith("error: UNAVAILABLE: ", run.Error);
        Assert.Contains($"127.0.0.1:{closedPort}", run.Error);
    }

    [Fact]
    public async Task Help_is_printed_on_stdout_with_exit_0()
    {
        var run = await CliRun.RunAsync("forward", "--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("--tokens", run.Out);
        Assert.Equal("", run.Error);
    }
}
