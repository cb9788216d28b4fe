namespace Headwise.Kernels.Tests;

/// <summary>What callers rely on besides the numbers: names, the factory, shape checks, no steady-state allocation.</summary>
public class KernelContractTests
{
    [Theory]
    [InlineData(KernelKind.Reference, "reference")]
    [InlineData(KernelKind.Simd, "simd")]
    public void Factory_creates_the_named_kernel(KernelKind kind, string name)
    {
        Assert.Equal(name, HeadKernels.Create(kind).Name);
    }

    [Fact]
    public void Auto_is_the_gpu_when_cuda_is_there_and_simd_otherwise()
    {
        var kernel = HeadKernels.Create(KernelKind.Auto);
        Assert.Equal(GpuKernel.IsCudaAvailable() ? "gpu-cuda" : "simd", kernel.Name);
        (kernel as IDisposable)?.Dispose();
    }

    [Fact]
    public void Gpu_kind_runs_on_cuda_or_on_the_cpu_accelerator()
    {
        using var kernel = (GpuKernel)HeadKernels.Create(KernelKind.Gpu);
        Assert.Equal(GpuKernel.IsCudaAvailable() ? "gpu-cuda" : "gpu-cpu", kernel.Name);
    }

    [Fact]
    public void Factory_rejects_an_unknown_kind()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => HeadKernels.Create((KernelKind)42));
    }

    [Theory]
    [InlineData(KernelKind.Reference)]
    [InlineData(KernelKind.Simd)]
    [InlineData(KernelKind.Gpu)]
    public void Wrong_buffer_sizes_name_the_argument(KernelKind kind)
    {
        var kernel = TestKernels.Create(kind);
        var shape = new HeadGroupShape(ModelDim: 4, HeadDim: 2, QueryHeads: 2);
        var weights = new HeadGroupWeights(shape, new float[16], new float[8], new float[8]);
        var options = new AttentionOptions(1f, false, 0);
        var input = new float[2 * 3 * 4];

        Assert.Equal("input", Assert.Throws<ArgumentException>(() =>
            kernel.Attend(new float[5], 2, 3, [], weights, options, new float[24], [])).ParamName);
        Assert.Equal("lengths", Assert.Throws<ArgumentException>(() =>
            kernel.Attend(input, 2, 3, [3], weights, options, new float[24], [])).ParamName);
        Assert.Equal("output", Assert.Throws<ArgumentException>(() =>
            kernel.Attend(input, 2, 3, [], weights, options, new float[23], [])).ParamName);
        Assert.Equal("attention", Assert.Throws<ArgumentException>(() =>
            kernel.Attend(input, 2, 3, [], weights, options, new float[24], new float[35])).ParamName);
        Assert.Equal("bias", Assert.Throws<ArgumentException>(() =>
            kernel.Project(new float[6], 2, 3, new float[12], 4, new float[3], new float[8])).ParamName);
        Assert.Equal("weights", Assert.Throws<ArgumentException>(() =>
            kernel.Project(new float[6], 2, 3, new float[11], 4, [], new float[8])).ParamName);
    }

    [Theory]
    [InlineData(KernelKind.Reference)]
    [InlineData(KernelKind.Simd)]
    [InlineData(KernelKind.Gpu)]
    public void Empty_batch_and_empty_sequences_do_nothing(KernelKind kind)
    {
        var kernel = TestKernels.Create(kind);
        var shape = new HeadGroupShape(ModelDim: 4, HeadDim: 2, QueryHeads: 1);
        var weights = new HeadGroupWeights(shape, new float[8], new float[8], new float[8]);
        kernel.Attend([], 0, 5, [], weights, new AttentionOptions(1f, true, 0), [], []);
        kernel.Attend([], 3, 0, [0, 0, 0], weights, new AttentionOptions(1f, true, 0), [], []);
        kernel.Project([], 0, 4, new float[8], 2, [], []);
    }

    [Fact]
    public void Simd_kernel_allocates_nothing_in_the_steady_state()
    {
        var random = new Random(31);
        var shape = new HeadGroupShape(ModelDim: 64, HeadDim: 16, QueryHeads: 4);
        var weights = RandomTensors.GroupWeights(random, shape, 0.02, bias: true);
        var input = RandomTensors.Normal(random, 2 * 33 * 64);
        var z = new float[2 * 33 * shape.QueryWidth];
        var attention = new float[2 * 4 * 33 * 33];
        var y = new float[2 * 33 * 64];
        var outputWeights = RandomTensors.Normal(random, shape.QueryWidth * 64, 0.02);
        var kernel = new SimdKernel();
        var options = new AttentionOptions(0.25f, Causal: true, Window: 0);

        void Forward()
        {
            kernel.Attend(input, 2, 33, [33, 20], weights, options, z, attention);
            kernel.Project(z, 2 * 33, shape.QueryWidth, outputWeights, 64, [], y); // small enough to stay inline
        }

        for (int i = 0; i < 3; i++) Forward(); // warms the pool's buckets, the JIT and the type initialisers
        int[] lengths = [33, 20];
        long before = GC.GetAllocatedBytesForCurrentThread();
        kernel.Attend(input, 2, 33, lengths, weights, options, z, attention);
        long afterAttend = GC.GetAllocatedBytesForCurrentThread();
        kernel.Project(z, 2 * 33, shape.QueryWidth, outputWeights, 64, [], y);
        long afterProject = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal((0L, 0L), (afterAttend - before, afterProject - afterAttend));
    }

    [Fact]
    public void Simd_kernel_allocates_nothing_at_a_gpt2_small_size()
    {
        // 4 MB of scratch per call: it must come back from the pool, not be allocated again.
        var random = new Random(33);
        var shape = new HeadGroupShape(ModelDim: 768, HeadDim: 64, QueryHeads: 1);
        var weights = RandomTensors.GroupWeights(random, shape, 0.02, bias: true);
        var input = RandomTensors.Normal(random, 1024 * 768);
        var z = new float[1024 * 64];
        var kernel = new SimdKernel();
        var options = new AttentionOptions(0.125f, Causal: true, Window: 0);
        for (int i = 0; i < 3; i++) kernel.Attend(input, 1, 1024, [], weights, options, z, []);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++) kernel.Attend(input, 1, 1024, [], weights, options, z, []);
        Assert.Equal(0L, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Parallel_project_reuses_its_job_and_allocates_nothing_in_the_steady_state()
    {
        const int rows = 64, inner = 128, outer = 160; // 1.3M multiply-adds: split over the cores
        var random = new Random(32);
        var x = RandomTensors.Normal(random, rows * inner);
        var w = RandomTensors.Normal(random, inner * outer, 0.05);
        var b = RandomTensors.Normal(random, outer, 0.05);
        var y = new float[rows * outer];
        var kernel = new SimdKernel();
        for (int i = 0; i < 5; i++) kernel.Project(x, rows, inner, w, outer, b, y);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++) kernel.Project(x, rows, inner, w, outer, b, y);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0L, allocated);
    }
}
