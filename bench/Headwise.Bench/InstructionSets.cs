using System.Diagnostics;

namespace Headwise.Bench;

/// <summary>
/// Runs a bench mode again in a child process whose JIT is limited to a narrower instruction set, so an
/// AVX-512 machine times the code an AVX2-only (or a 128-bit) machine runs: the same kernels, the same
/// registers (16, VEX-encoded, once AVX-512 is off), and OpenBLAS's kernel for that set (it follows the
/// instruction sets the child reports, see <see cref="OpenBlas"/>).
/// </summary>
/// <remarks>
/// .NET 10 knobs, checked on this machine (Vector512/256/128.IsHardwareAccelerated, Avx512F/Avx2/Fma.IsSupported):
/// <c>DOTNET_EnableAVX512F=0</c> no longer turns anything off; <c>DOTNET_EnableAVX512=0</c> leaves AVX2 + FMA;
/// adding <c>DOTNET_PreferredVectorBitWidth=128</c> leaves Vector128 with FMA (as on Arm64); <c>DOTNET_EnableAVX2=0</c>
/// leaves Vector128 without FMA.
/// </remarks>
internal static class InstructionSets
{
    /// <summary>The option names and the environment each one sets in the child.</summary>
    public static readonly IReadOnlyDictionary<string, (string Name, string Value)[]> Options =
        new Dictionary<string, (string, string)[]>
        {
            ["--avx2"] = [("DOTNET_EnableAVX512", "0")],
            ["--vector128"] = [("DOTNET_EnableAVX512", "0"), ("DOTNET_PreferredVectorBitWidth", "128")],
        };

    /// <summary>
    /// When <paramref name="args"/> hold one of <see cref="Options"/>, runs this program again with the rest of the
    /// arguments under that option's environment, echoing its output, and returns its exit code; otherwise null.
    /// </summary>
    public static int? RunNarrowed(string[] args)
    {
        var option = args.FirstOrDefault(Options.ContainsKey);
        if (option is null) return null;
        string host = Environment.ProcessPath ?? "dotnet";
        var start = new ProcessStartInfo(host) { UseShellExecute = false };
        // Under `dotnet Headwise.Bench.dll` the process is the muxer and the assembly goes first; the apphost
        // (`dotnet run`, or bin/…/Headwise.Bench) takes the arguments alone.
        if (Path.GetFileNameWithoutExtension(host) == "dotnet") start.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        foreach (var arg in args.Where(a => a != option)) start.ArgumentList.Add(arg);
        foreach (var (name, value) in Options[option]) start.Environment[name] = value;
        Console.WriteLine($"# child process with {string.Join(' ', Options[option].Select(e => $"{e.Name}={e.Value}"))}");
        using var child = Process.Start(start) ?? throw new InvalidOperationException("the child process did not start");
        child.WaitForExit();
        return child.ExitCode;
    }
}
