using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Headwise.Kernels;

namespace Headwise.Bench;

/// <summary>
/// BenchmarkDotNet view of the kernel calls a head grain and the coordinator make, with MemoryDiagnoser:
/// the Allocated column must read "-" (nothing) for Attend and Project in the steady state.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(InProcessConfig))]
public class KernelBenchmarks
{
    /// <summary>
    /// In process: a generated benchmark project under the repository would inherit Directory.Build.props
    /// (whose Contracts using the bench does not reference) and fail to build.
    /// </summary>
    private sealed class InProcessConfig : ManualConfig
    {
        public InProcessConfig()
        {
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(10));
            // Reports go beside the binary (under bin/, ignored), not into the directory the command ran from.
            ArtifactsPath = Path.Combine(AppContext.BaseDirectory, "BenchmarkDotNet.Artifacts");
        }
    }

    private LayerFixture fixture = null!;
    private readonly SimdKernel kernel = new();

    [Params(128, 1024)]
    public int Tokens { get; set; }

    [Params(false, true)]
    public bool Causal { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        fixture = new LayerFixture(new LayerShape("gpt2-small", 768, 12, 12, 64, Tokens, Causal));
        fixture.Prepare(kernel);
        fixture.Headwise(kernel);
    }

    /// <summary>One head group (one grain's work).</summary>
    [Benchmark]
    public void AttendOneHead() => fixture.AttendOne(kernel);

    /// <summary>W_O of the layer on all cores (the coordinator's work).</summary>
    [Benchmark]
    public void ProjectOutput() => fixture.ProjectOutput(kernel);

    /// <summary>The whole layer: 12 groups on the thread pool, gather, W_O (Parallel.For's own allocations show here).</summary>
    [Benchmark]
    public void Forward() => fixture.Headwise(kernel);
}
