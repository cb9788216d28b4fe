using Headwise.TestSupport;
using System.Text.RegularExpressions;

namespace Headwise.SystemTests;

/// <summary>The newcomer's path: the silo with its embedded defaults, and the CLI against it, as processes.</summary>
public sealed class EmbeddedSiloTests
{
    [Fact]
    public async Task Cli_forward_against_the_embedded_silo_prints_a_per_head_table()
    {
        await using var silo = SiloProcess.Start(BuiltPrograms.SiloDll);
        await silo.WaitUntilHealthyAsync();

        var result = await CliProcess.RunAsync("forward", "--model", "demo", "--tokens", "128", "--causal", "--server", silo.GrpcAddress.ToString());

        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Out}\n{result.Error}");
        var rows = result.Out.Split('\n').Where(line => Regex.IsMatch(line, @"^\s*│\s*\d+\s*│")).ToList();
        // One row per head group of the demo model (12 heads), each naming the silo and the kernel.
        Assert.Equal(12, rows.Count);
        Assert.Equal(Enumerable.Range(0, 12), rows.Select(r => int.Parse(r.Split('│')[1].Trim())).Order());
        Assert.All(rows, r => Assert.Contains($"127.0.0.1:{silo.SiloPort}", r));
        // Headwise__Kernel=Auto (appsettings.json, as the code's default): the GPU kernel where CUDA opens, else SIMD.
        var kernels = rows.Select(r => Regex.Match(r, @"\b(simd|gpu-cuda)\b").Value).ToHashSet();
        Assert.True(kernels.Count == 1 && !kernels.Contains(""), $"every head names one kernel, simd or gpu-cuda: {string.Join(" | ", rows)}");
        Assert.Matches("[0-9a-f]{32}", result.Out);
        Assert.Contains("Headwise silo ready", silo.Output);
    }

    [Fact]
    public async Task Bad_configuration_stops_the_silo_with_a_message_naming_the_setting()
    {
        await using var silo = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string> { ["Headwise__MaxTokens"] = "0" });

        int exitCode = await silo.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(2, exitCode);
        Assert.Contains("Headwise__MaxTokens is 0", silo.Output);
    }

    [Fact]
    public async Task Cli_reports_an_unknown_model_in_one_line_and_fails()
    {
        await using var silo = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string> { ["Headwise__DemoModel"] = "false" });
        await silo.WaitUntilHealthyAsync();

        var result = await CliProcess.RunAsync("forward", "--model", "demo", "--tokens", "4", "--server", silo.GrpcAddress.ToString());

        Assert.Equal(1, result.ExitCode);
        Assert.Equal("error: NOT_FOUND: model 'demo' not found.", result.Error.Trim());
    }
}
