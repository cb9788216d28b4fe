using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Headwise.Kernels;

/// <summary>
/// GPU version 1, written with ILGPU: CUDA when the machine has an NVIDIA device, ILGPU's CPU accelerator
/// (a multi-threaded emulator, about 1000× slower than <see cref="SimdKernel"/>) otherwise, which is how the
/// tests run it. The same semantics as <see cref="ReferenceKernel"/>, in float32, on the plainest data-parallel
/// scheme: one device thread per output element.
/// <list type="number">
/// <item>qkv[T, (g+2)·dh] = x·[W_Q W_K W_V] + b, with the group's joined weights copied to the device once
/// (<see cref="Prepare"/> or the first <see cref="Attend"/>).</item>
/// <item>scores[g, T, T] = Q·Kᵀ·scale for the visible pairs; one thread per row then turns its visible range
/// into the stable softmax and zeroes the rest (a row with no visible key stays zeros).</item>
/// <item>z[T, g·dh] = weights·V, summing over each row's visible keys only.</item>
/// </list>
/// Not measured on a GPU yet: no CUDA device was lent to the session that wrote it (docs/performance.md).
/// The score matrix is materialised (g·T² floats on the device); a fused, tiled kernel is the next version.
/// One accelerator stream serves the kernel, so concurrent head grains take turns on it.
/// </summary>
public sealed class GpuKernel : IHeadKernel, IDisposable
{
    private readonly Context context;
    private readonly Accelerator accelerator;
    private readonly object gate = new();
    private readonly ConditionalWeakTable<HeadGroupWeights, DeviceWeights> prepared = new();
    private readonly Action<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ProjectionSizes> project;
    private readonly Action<Index3D, ArrayView<float>, ArrayView<float>, AttentionSizes> scores;
    private readonly Action<Index2D, ArrayView<float>, AttentionSizes> softmax;
    private readonly Action<Index3D, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionSizes> weightedValues;
    private readonly Dictionary<string, MemoryBuffer1D<float, Stride1D.Dense>> scratch = [];
    private bool disposed;

    private GpuKernel(Context context, Accelerator accelerator)
    {
        this.context = context;
        this.accelerator = accelerator;
        project = accelerator.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ProjectionSizes>(ProjectKernel);
        scores = accelerator.LoadAutoGroupedStreamKernel<Index3D, ArrayView<float>, ArrayView<float>, AttentionSizes>(ScoresKernel);
        softmax = accelerator.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, AttentionSizes>(SoftmaxKernel);
        weightedValues = accelerator.LoadAutoGroupedStreamKernel<Index3D, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionSizes>(WeightedValuesKernel);
        Name = accelerator.AcceleratorType == AcceleratorType.Cuda ? "gpu-cuda" : "gpu-cpu";
    }

    /// <summary>"gpu-cuda" on an NVIDIA device, "gpu-cpu" on ILGPU's CPU emulator.</summary>
    public string Name { get; }

    /// <summary>The device this kernel runs on, as ILGPU names it.</summary>
    public string DeviceName => accelerator.Name;

    /// <summary>On the first CUDA device when there is one, else on ILGPU's CPU accelerator.</summary>
    public static GpuKernel Create() => TryCreateCuda() ?? CreateCpuEmulated();

    /// <summary>On the first CUDA device, or null when the machine has none (or no CUDA driver).</summary>
    public static GpuKernel? TryCreateCuda()
    {
        Context? context = null;
        try
        {
            context = Context.Create(builder => builder.Cuda());
            var devices = context.GetCudaDevices();
            if (devices.Count == 0)
            {
                context.Dispose();
                return null;
            }
            return new GpuKernel(context, devices[0].CreateAccelerator(context));
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // No driver, a driver too old for ILGPU, or a device that refused a context: the SIMD kernel serves.
            context?.Dispose();
            return null;
        }
    }

    /// <summary>On ILGPU's CPU accelerator: the same device code, emulated; for tests and machines without a GPU.</summary>
    public static GpuKernel CreateCpuEmulated()
    {
        var context = Context.Create(builder => builder.CPU());
        return new GpuKernel(context, context.CreateCPUAccelerator(0));
    }

    /// <summary>True when a CUDA device can be opened here (what <see cref="KernelKind.Auto"/> asks).</summary>
    public static bool IsCudaAvailable()
    {
        try
        {
            using var context = Context.Create(builder => builder.Cuda());
            return context.GetCudaDevices().Count > 0;
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            return false;
        }
    }

    public void Prepare(HeadGroupWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        lock (gate) Device(weights);
    }

    public void Attend(
        // x: [batch, tokens, D]
        ReadOnlySpan<float> input, int batch, int tokens,
        // [batch], or empty when every sequence is full
        ReadOnlySpan<int> lengths,
        HeadGroupWeights weights, AttentionOptions options,
        // z: [batch, tokens, g·dh]
        Span<float> output,
        // [batch, g, tokens, tokens], or empty
        Span<float> attention)
    {
        KernelArguments.CheckAttend(input, batch, tokens, lengths, weights, output, attention);
        if (options.Rotary.IsEnabled)
            throw new NotSupportedException("the GPU kernel has no RoPE step; RoPE layers take IncrementalAttention.Forward on this kernel.");
        var shape = weights.Shape;
        if (batch == 0 || tokens == 0 || shape.QueryWidth == 0) return;
        int modelDim = shape.ModelDim, headDim = shape.HeadDim, queryWidth = shape.QueryWidth;
        int projectionWidth = queryWidth + 2 * headDim;

        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            var device = Device(weights);
            var stream = accelerator.DefaultStream;
            var x = Scratch("x", (long)tokens * modelDim);                   // one sequence at a time
            var qkv = Scratch("qkv", (long)tokens * projectionWidth);
            var probabilities = Scratch("scores", (long)shape.QueryHeads * tokens * tokens);
            var z = Scratch("z", (long)tokens * queryWidth);
            for (int sequence = 0; sequence < batch; sequence++)
            {
                x.View.SubView(0, (long)tokens * modelDim).CopyFromCPU(stream, input.Slice(sequence * tokens * modelDim, tokens * modelDim));
                project(new Index2D(projectionWidth, tokens), x.View, device.Weights.View, device.Bias.View, qkv.View,
                    new ProjectionSizes(modelDim, projectionWidth, device.HasBias ? 1 : 0));

                int length = lengths.IsEmpty ? tokens : Math.Clamp(lengths[sequence], 0, tokens);
                var sizes = new AttentionSizes(tokens, headDim, projectionWidth, shape.QueryHeads, length,
                    options.Causal ? 1 : 0, options.Window, options.Scale);
                scores(new Index3D(tokens, tokens, shape.QueryHeads), qkv.View, probabilities.View, sizes);
                softmax(new Index2D(tokens, shape.QueryHeads), probabilities.View, sizes);
                weightedValues(new Index3D(headDim, tokens, shape.QueryHeads), probabilities.View, qkv.View, z.View, sizes);

                var sequenceOutput = output.Slice(sequence * tokens * queryWidth, tokens * queryWidth);
                z.View.SubView(0, sequenceOutput.Length).CopyToCPU(stream, sequenceOutput);
                if (!attention.IsEmpty)
                {
                    int mapLength = shape.QueryHeads * tokens * tokens;
                    probabilities.View.SubView(0, mapLength).CopyToCPU(stream, attention.Slice(sequence * mapLength, mapLength));
                }
            }
            stream.Synchronize();
        }
    }

    public void Project(
        // x: [rows, inner]
        ReadOnlySpan<float> input, int rows, int inner,
        // W: [inner, outer]
        ReadOnlySpan<float> weights, int outer,
        // b: [outer], or empty
        ReadOnlySpan<float> bias,
        // y: [rows, outer]
        Span<float> output)
    {
        KernelArguments.CheckProject(input, rows, inner, weights, outer, bias, output);
        if (rows == 0 || outer == 0) return;
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            var stream = accelerator.DefaultStream;
            var x = Scratch("project.x", Math.Max(1L, (long)rows * inner));
            var w = Scratch("project.w", Math.Max(1L, (long)inner * outer));
            var b = Scratch("project.b", outer);
            var y = Scratch("project.y", (long)rows * outer);
            if (!input.IsEmpty) x.View.SubView(0, input.Length).CopyFromCPU(stream, input);
            if (!weights.IsEmpty) w.View.SubView(0, weights.Length).CopyFromCPU(stream, weights);
            if (!bias.IsEmpty) b.View.SubView(0, outer).CopyFromCPU(stream, bias);
            project(new Index2D(outer, rows), x.View, w.View, b.View, y.View, new ProjectionSizes(inner, outer, bias.IsEmpty ? 0 : 1));
            y.View.SubView(0, output.Length).CopyToCPU(stream, output);
            stream.Synchronize();
        }
    }

    /// <summary>A device buffer of at least <paramref name="length"/> floats, kept for the next call.</summary>
    private MemoryBuffer1D<float, Stride1D.Dense> Scratch(string name, long length)
    {
        if (scratch.TryGetValue(name, out var buffer) && buffer.Length >= length) return buffer;
        buffer?.Dispose();
        buffer = accelerator.Allocate1D<float>(Math.Max(1L, length));
        scratch[name] = buffer;
        return buffer;
    }

    private DeviceWeights Device(HeadGroupWeights weights)
    {
        if (prepared.TryGetValue(weights, out var device)) return device;
        var shape = weights.Shape;
        int modelDim = shape.ModelDim, queryWidth = shape.QueryWidth, headDim = shape.HeadDim;
        int projectionWidth = queryWidth + 2 * headDim;
        var joined = new float[modelDim * projectionWidth]; // [D, (g+2)·dh]: Q, K, V side by side
        for (int row = 0; row < modelDim; row++)
        {
            weights.Query.AsSpan(row * queryWidth, queryWidth).CopyTo(joined.AsSpan(row * projectionWidth));
            weights.Key.AsSpan(row * headDim, headDim).CopyTo(joined.AsSpan(row * projectionWidth + queryWidth));
            weights.Value.AsSpan(row * headDim, headDim).CopyTo(joined.AsSpan(row * projectionWidth + queryWidth + headDim));
        }
        var bias = new float[projectionWidth];
        weights.QueryBias?.CopyTo(bias, 0);
        weights.KeyBias?.CopyTo(bias, queryWidth);
        weights.ValueBias?.CopyTo(bias, queryWidth + headDim);
        bool hasBias = weights.QueryBias is not null || weights.KeyBias is not null || weights.ValueBias is not null;
        device = new DeviceWeights(accelerator.Allocate1D(joined), accelerator.Allocate1D(bias), hasBias);
        prepared.AddOrUpdate(weights, device);
        return device;
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (disposed) return;
            disposed = true;
            foreach (var buffer in scratch.Values) buffer.Dispose();
            scratch.Clear();
            accelerator.Dispose();
            context.Dispose();
        }
    }

    /// <summary>A group's joined weights [D × (g+2)·dh] and bias [(g+2)·dh] on the device.</summary>
    private sealed record DeviceWeights(MemoryBuffer1D<float, Stride1D.Dense> Weights, MemoryBuffer1D<float, Stride1D.Dense> Bias, bool HasBias);

    /// <summary>The sizes a projection kernel needs: x is [rows, Inner], W [Inner, Columns].</summary>
    internal readonly record struct ProjectionSizes(int Inner, int Columns, int HasBias);

    /// <summary>The sizes and mask of one sequence's attention; flags are ints, which every ILGPU backend passes.</summary>
    internal readonly record struct AttentionSizes(int Tokens, int HeadDim, int ProjectionWidth, int QueryHeads, int Length,
        int Causal, int Window, float Scale)
    {
        /// <summary>The first visible key of a query (as <see cref="AttentionOptions.VisibleKeyRange"/>).</summary>
        public int Start(int query) => Window > 0 ? Math.Max(0, query - Window + 1) : 0;

        /// <summary>One past the last visible key of a query; at most <see cref="Start"/> when none is visible.</summary>
        public int End(int query) => Causal != 0 ? Math.Min(query + 1, Length) : Length;
    }

    // y[row, column] = b[column] + Σ_k x[row, k] · W[k, column]; X is the column so neighbouring threads read neighbouring W.
    private static void ProjectKernel(Index2D index, ArrayView<float> input, ArrayView<float> weights, ArrayView<float> bias,
        ArrayView<float> output, ProjectionSizes sizes)
    {
        int column = index.X, row = index.Y;
        float sum = sizes.HasBias != 0 ? bias[column] : 0f;
        long inputRow = (long)row * sizes.Inner;
        for (int k = 0; k < sizes.Inner; k++)
            sum += input[inputRow + k] * weights[(long)k * sizes.Columns + column];
        output[(long)row * sizes.Columns + column] = sum;
    }

    // scores[head, query, key] = Q_head[query] · K[key] · scale for visible pairs (others are never read).
    private static void ScoresKernel(Index3D index, ArrayView<float> qkv, ArrayView<float> scores, AttentionSizes sizes)
    {
        int key = index.X, query = index.Y, head = index.Z;
        long at = ((long)head * sizes.Tokens + query) * sizes.Tokens + key;
        if (key < sizes.Start(query) || key >= sizes.End(query)) return;
        long queryRow = (long)query * sizes.ProjectionWidth + head * sizes.HeadDim;
        long keyRow = (long)key * sizes.ProjectionWidth + sizes.QueryHeads * sizes.HeadDim;
        float dot = 0f;
        for (int d = 0; d < sizes.HeadDim; d++)
            dot += qkv[queryRow + d] * qkv[keyRow + d];
        scores[at] = dot * sizes.Scale;
    }

    // One row: the stable softmax over its visible keys, exact zeros elsewhere.
    private static void SoftmaxKernel(Index2D index, ArrayView<float> scores, AttentionSizes sizes)
    {
        int query = index.X, head = index.Y;
        long row = ((long)head * sizes.Tokens + query) * sizes.Tokens;
        int start = sizes.Start(query), end = sizes.End(query);
        float max = float.NegativeInfinity;
        for (int key = start; key < end; key++)
            max = Math.Max(max, scores[row + key]);
        float sum = 0f;
        for (int key = start; key < end; key++)
        {
            float weight = MathF.Exp(scores[row + key] - max);
            scores[row + key] = weight;
            sum += weight;
        }
        float inverse = sum > 0f ? 1f / sum : 0f;
        for (int key = 0; key < sizes.Tokens; key++)
            scores[row + key] = key >= start && key < end ? scores[row + key] * inverse : 0f;
    }

    // z[query, head·dh + d] = Σ over visible keys of weights[head, query, key] · V[key, d].
    private static void WeightedValuesKernel(Index3D index, ArrayView<float> weights, ArrayView<float> qkv, ArrayView<float> z,
        AttentionSizes sizes)
    {
        int d = index.X, query = index.Y, head = index.Z;
        long row = ((long)head * sizes.Tokens + query) * sizes.Tokens;
        long valueColumn = (long)(sizes.QueryHeads + 1) * sizes.HeadDim + d;
        float sum = 0f;
        int end = sizes.End(query);
        for (int key = sizes.Start(query); key < end; key++)
            sum += weights[row + key] * qkv[(long)key * sizes.ProjectionWidth + valueColumn];
        z[(long)query * sizes.QueryHeads * sizes.HeadDim + head * sizes.HeadDim + d] = sum;
    }
}
