using System.Diagnostics;
using System.Reflection;
using System.Runtime.Intrinsics;
using Xunit.Sdk;

namespace Headwise.Kernels.Tests;

/// <summary>
/// This test assembly's entry point: <c>dotnet Headwise.Kernels.Tests.dll --kernel-checks</c> runs the SIMD kernel's
/// tests (<see cref="Classes"/>) in this process and prints what it ran. <see cref="InstructionSetTests"/> starts it
/// with the JIT limited to AVX2 or to 128-bit vectors, so an AVX-512 machine (CI) also checks the code an
/// AVX2-only or Arm64 machine runs: its narrower widths inside an AVX-512 process are compiled with AVX-512's 32
/// registers and encodings, not the 16 of the machines that run them. The test host never calls this entry point.
/// </summary>
public static class KernelChecksProgram
{
    /// <summary>The tests whose every case depends on the SIMD width (widths up to the best one, or the default kernel).</summary>
    internal static readonly Type[] Classes =
    [
        typeof(GemmTests), typeof(SimdKernelTests), typeof(ProjectTests), typeof(DecodeAttentionTests),
        typeof(GoldenVectorTests), typeof(AttentionPropertyTests), typeof(KernelContractTests),
    ];

    public static async Task<int> Main(string[] args)
    {
        if (!args.Contains("--kernel-checks"))
        {
            Console.Error.WriteLine("usage: dotnet Headwise.Kernels.Tests.dll --kernel-checks (the tests run under dotnet test)");
            return 2;
        }
        Console.WriteLine($"kernel width {VectorWidths.Best}; Vector512 {Vector512.IsHardwareAccelerated}, Vector256 {Vector256.IsHardwareAccelerated}, " +
            $"FMA {System.Runtime.Intrinsics.X86.Fma.IsSupported}");
        int ran = 0, failed = 0, leftOut = 0;
        var clock = Stopwatch.StartNew();
        foreach (var type in Classes)
            foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance))
            {
                var fact = method.GetCustomAttribute<FactAttribute>();
                if (fact is null) continue;
                if (fact.Skip is not null) throw new InvalidOperationException($"{type.Name}.{method.Name} is skipped; a narrowed run must not hide that");
                var cases = method.GetCustomAttributes<DataAttribute>().SelectMany(data => data.GetData(method)).ToList();
                if (fact is not TheoryAttribute) cases.Add([]);
                foreach (var arguments in cases)
                {
                    // The GPU kernel (ILGPU's CPU emulator when no device) does not use these SIMD paths, and costs seconds.
                    if (arguments.Any(argument => argument is KernelKind.Gpu)) { leftOut++; continue; }
                    ran++;
                    try
                    {
                        var instance = Activator.CreateInstance(type);
                        if (method.Invoke(instance, arguments) is Task task) await task;
                        (instance as IDisposable)?.Dispose();
                    }
                    catch (Exception exception)
                    {
                        failed++;
                        var cause = exception is TargetInvocationException { InnerException: { } inner } ? inner : exception;
                        Console.WriteLine($"FAILED {type.Name}.{method.Name}({string.Join(", ", arguments)}): {cause.Message}");
                    }
                }
            }
        Console.WriteLine($"ran {ran} cases, {failed} failed, {leftOut} GPU-kernel cases left out, {clock.Elapsed.TotalSeconds:F1} s");
        return failed == 0 ? 0 : 1;
    }
}
