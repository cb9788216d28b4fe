using System.Diagnostics;

namespace Headwise.Kernels.Tests;

/// <summary>
/// The SIMD kernel's tests again, in child processes whose JIT stops at AVX2 (16 registers, VEX) or at 128-bit
/// vectors (with FMA, as on Arm64; and without, as on SSE-only x64), so the narrow paths are checked as the machines
/// that run them compile them, not only as forced widths inside an AVX-512 process. .NET 10's switches: the
/// <c>DOTNET_EnableAVX512F</c> of earlier versions no longer turns AVX-512 off, <c>DOTNET_EnableAVX512=0</c> does.
/// </summary>
public class InstructionSetTests
{
    [Theory]
    [InlineData("Bits256", "DOTNET_EnableAVX512=0")]
    [InlineData("Bits128", "DOTNET_EnableAVX512=0 DOTNET_PreferredVectorBitWidth=128")]
    [InlineData("Bits128", "DOTNET_EnableAVX2=0")] // .NET 10 takes FMA away with AVX2: MultiplyAdd as a multiply and an add
    public async Task Kernel_tests_pass_with_the_jit_limited_to_a_narrower_instruction_set(string expectedWidth, string environment)
    {
        // A machine already narrower (an Arm64 one ignores the x64 switches) runs its own best width in the child.
        var expected = (VectorWidth)Math.Min((int)Enum.Parse<VectorWidth>(expectedWidth), (int)VectorWidths.Best);
        var start = new ProcessStartInfo(DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(typeof(KernelChecksProgram).Assembly.Location);
        start.ArgumentList.Add("--kernel-checks");
        foreach (var pair in environment.Split(' '))
            start.Environment[pair[..pair.IndexOf('=')]] = pair[(pair.IndexOf('=') + 1)..];

        using var child = Process.Start(start)!;
        var output = child.StandardOutput.ReadToEndAsync();
        var errors = child.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await child.WaitForExitAsync(timeout.Token);
        string text = await output + await errors;

        Assert.True(child.ExitCode == 0, $"{environment}: exit {child.ExitCode}\n{text}");
        Assert.Contains($"kernel width {expected};", text);
        // Every class of KernelChecksProgram contributes cases: far fewer means the runner stopped finding them.
        var summary = text.Split('\n').Single(line => line.StartsWith("ran ", StringComparison.Ordinal));
        int ran = int.Parse(summary.Split(' ')[1]);
        Assert.True(ran >= 60, $"{environment}: only {ran} cases ran\n{text}");
    }

    private static string DotnetHost() =>
        Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
}
