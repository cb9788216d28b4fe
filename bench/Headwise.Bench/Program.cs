using BenchmarkDotNet.Running;
using Headwise.Bench;

// dotnet run -c Release --project bench/Headwise.Bench -- [--avx2 | --vector128] table [--one-thread] [FILTER…] | parts [T [D [dh [causal]]]] | threads [T] | pieces [T [groups]]
//     | decode [context [D [dh [g]]]] | caches [count [context [steps [max_tokens]]]] | attention [T [dh [causal]]] | sgemm | peak | bdn BENCHMARKDOTNET-ARGS…  (docs/performance.md says what each prints)
// --avx2 / --vector128: the same mode in a child process whose JIT stops at that instruction set (InstructionSets.cs).
if (InstructionSets.RunNarrowed(args) is { } narrowed) return narrowed;
string mode = args.Length > 0 ? args[0] : "table";
string[] rest = args.Skip(1).ToArray();
switch (mode)
{
    case "table":
        return TableRunner.Run(rest);
    case "parts":
        return PartsRunner.Run(rest);
    case "threads":
        return ThreadsRunner.Run(rest);
    case "pieces":
        return PiecesRunner.Run(rest);
    case "decode":
        return DecodeRunner.Run(rest);
    case "caches":
        return CacheSweepRunner.Run(rest);
    case "attention":
        return AttentionProbe.Run(rest);
    case "memory":
        return MemoryRunner.Run(rest);
    case "sgemm":
        return SgemmRunner.Run();
    case "peak":
        Console.WriteLine($"FMA peak: {FmaPeak.Measure(1):F1} GFLOP/s on 1 thread, {FmaPeak.Measure(Environment.ProcessorCount):F1} on {Environment.ProcessorCount}");
        return 0;
    case "bdn":
        BenchmarkSwitcher.FromAssembly(typeof(KernelBenchmarks).Assembly).Run(rest);
        return 0;
    default:
        Console.Error.WriteLine("usage: Headwise.Bench [--avx2 | --vector128] [table [--one-thread] [FILTER…] | parts [T [D [dh [causal]]]] | threads [T] | pieces [T [groups]] | decode [context [D [dh [g]]]] | caches [count [context [steps [max_tokens]]]] | attention [T [dh [causal]]] | sgemm | peak | bdn ARGS…]");
        return 2;
}
