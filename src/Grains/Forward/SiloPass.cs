using System.Buffers;
using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Kernels;

namespace Headwise.Grains.Forward;

/// <summary>
/// What one silo does in a forward pass, as the coordinator (the tree's root) or as a relay: send X on to the silos
/// below it first, compute its own head groups on the compute threads, multiply their Z by their rows of W_O into one
/// partial sum (or keep the Z when the pass gathers), then add the answers of the silos below. One code path for the
/// root and every relay, so a pass on one silo is the same computation as on many.
/// </summary>
public sealed class SiloPass(
    IGrainFactory grains,
    LocalHeads localHeads,
    IHeadKernel kernel,
    SiloIdentity silo,
    CancelledForwards cancelled,
    ComputeScheduler compute)
{
    /// <param name="request">X in its wire format, this silo's groups, and the silos below.</param>
    /// <param name="localInput">The float32 X for this silo's own heads when the caller already has it (the root).</param>
    /// <param name="encode">Encode the answer in the request's wire format (false at the root, which reads it here).</param>
    public async Task<SiloPassAnswer> Run(SiloPassRequest request, byte[]? localInput, bool encode, CancellationToken cancellationToken)
    {
        long received = Stopwatch.GetTimestamp();
        // The silos below first: their X is on its way before this silo's cores are busy.
        var children = ScatterTree.Children(request.Subtree, request.Fanout)
            .Select(c => CallChild(request, c.Child, c.Below, cancellationToken)).ToList();

        var work = request.Work;
        var input = localInput ?? (work.Wire == WireFormat.Bf16 ? Bf16.DecodeToFloatBytes(work.Input) : work.Input);
        var (local, moved) = await Resolve(request);
        Computed own = local.Count == 0
            ? new Computed(null, [], 0)
            : await compute.Run(() => Compute(request, input, local, received, cancellationToken), cancellationToken);

        var answers = new List<GroupAnswer>(own.Groups);
        var allMoved = new List<SiloAssignment>(moved);
        var traffic = new List<SiloTraffic>();
        float[]? partial = own.Partial;
        foreach (var child in children)
        {
            var (answer, callMs) = await child;
            answers.AddRange(answer.Groups.Select(g => g.CallMs == 0 ? g with { CallMs = callMs } : g));
            allMoved.AddRange(answer.Moved);
            traffic.AddRange(answer.Traffic);
            if (answer.Partial is { } childPartial)
            {
                var sum = Widen(childPartial, work.Wire);
                if (partial is null) partial = sum;
                else AddInto(partial, sum);
            }
        }

        byte[]? partialBytes = partial is null ? null : Narrow(partial, encode ? work.Wire : WireFormat.F32);
        if (encode && work.Wire == WireFormat.Bf16)
            answers = answers.Select(a => a.Output is { } z && a.Wire == WireFormat.F32 ? a with { Output = Bf16.Encode(FloatBytes.AsFloats(z)), Wire = WireFormat.Bf16 } : a).ToList();
        long sentBack = (partialBytes?.LongLength ?? 0) + answers.Sum(a => (a.Output?.LongLength ?? 0) + (a.Attention?.LongLength ?? 0));
        traffic.Insert(0, new SiloTraffic
        {
            Silo = silo.Name,
            Groups = local.Count,
            BytesSent = localInput is null ? work.Input.LongLength : 0,
            BytesReceived = localInput is null ? sentBack : 0,
        });
        return new SiloPassAnswer
        {
            Partial = partialBytes,
            Groups = answers.ToArray(),
            Moved = allMoved.ToArray(),
            Traffic = traffic.ToArray(),
            ProjectionMs = own.ProjectionMs,
        };
    }

    private async Task<(SiloPassAnswer Answer, double CallMs)> CallChild(SiloPassRequest request, SiloAssignment child, SiloAssignment[] below,
        CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        var answer = await grains.GetGrain<ISiloRelayGrain>(GrainKeys.Relay(child.Silo)).Forward(
            request with { Groups = child.Groups, Subtree = below }, cancellationToken);
        return (answer, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    // The groups active here; any other is activated (or found) wherever placement puts it, and reported as moved.
    private async Task<(List<(int Group, string Key, LocalHead Head)> Local, List<SiloAssignment> Moved)> Resolve(SiloPassRequest request)
    {
        var local = new List<(int, string, LocalHead)>(request.Groups.Length);
        var elsewhere = new List<(int Group, string Key)>();
        foreach (int group in request.Groups)
        {
            string key = $"{request.Layer}/{group}";
            if (localHeads.TryGet(key, out var head)) local.Add((group, key, head));
            else elsewhere.Add((group, key));
        }
        var moved = new List<SiloAssignment>();
        if (elsewhere.Count == 0) return (local, moved);
        var placements = await Task.WhenAll(elsewhere.Select(h => grains.GetGrain<IHeadGrain>(h.Key).Describe()));
        for (int i = 0; i < elsewhere.Count; i++)
        {
            var (group, key) = elsewhere[i];
            if (placements[i].Silo == silo.Name && localHeads.TryGet(key, out var head)) local.Add((group, key, head));
            else moved.Add(new SiloAssignment(placements[i].Silo, [group]));
        }
        local.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return (local, moved);
    }

    private sealed record Computed(float[]? Partial, GroupAnswer[] Groups, double ProjectionMs);

    // On a compute thread: the heads in parallel over the compute threads, then this silo's rows of W_O in one GEMM.
    private Computed Compute(SiloPassRequest request, byte[] input, List<(int Group, string Key, LocalHead Head)> local, long received,
        CancellationToken cancellationToken)
    {
        var work = request.Work;
        var spec = local[0].Head.Spec;
        int rows = work.Batch * work.Tokens, groupWidth = spec.GroupSize * spec.HeadDim, modelDim = spec.ModelDim;
        var answers = new GroupAnswer[local.Count];
        bool gather = request.Mode == OutputProjectionMode.Gathered;
        int width = local.Count * groupWidth;
        float[]? concat = gather ? null : ArrayPool<float>.Shared.Rent(rows * width);
        try
        {
            compute.For(local.Count, i =>
            {
                var (group, key, head) = local[i];
                double queueMs = Stopwatch.GetElapsedTime(received).TotalMilliseconds;
                var z = new float[rows * groupWidth];
                var attention = work.ReturnAttention
                    ? new byte[checked(work.Batch * spec.GroupSize * work.Tokens * work.Tokens * sizeof(float))]
                    : null;
                double computeMs = HeadAttention.Run(key, work, FloatBytes.AsFloats(input), head, kernel, silo.Name, cancelled, cancellationToken, z,
                    attention is null ? Span<float>.Empty : FloatBytes.AsFloats(attention.AsSpan()), attention);
                if (concat is not null)
                    for (int row = 0; row < rows; row++)
                        z.AsSpan(row * groupWidth, groupWidth).CopyTo(concat.AsSpan(row * width + i * groupWidth, groupWidth));
                answers[i] = new GroupAnswer
                {
                    Group = group,
                    Version = head.Version,
                    Silo = silo.Name,
                    Kernel = kernel.Name,
                    ComputeMs = computeMs,
                    QueueMs = queueMs,
                    Output = gather ? FloatBytes.ToBytes(z) : null,
                    Attention = attention,
                };
            });
            if (concat is null) return new Computed(null, answers, 0);

            // Row-parallel W_O: this silo's Z [rows × k·g·dh] times its groups' rows of W_O [k·g·dh × D].
            long started = Stopwatch.GetTimestamp();
            var stacked = ArrayPool<float>.Shared.Rent(width * modelDim);
            try
            {
                for (int i = 0; i < local.Count; i++)
                    local[i].Head.OutputRows.CopyTo(stacked.AsSpan(i * groupWidth * modelDim));
                var partial = new float[rows * modelDim];
                using (HeadwiseTelemetry.StartOutputProjection(rows, width, modelDim))
                    kernel.Project(concat.AsSpan(0, rows * width), rows, width, stacked.AsSpan(0, width * modelDim), modelDim,
                        ReadOnlySpan<float>.Empty, partial);
                return new Computed(partial, answers, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            finally
            {
                ArrayPool<float>.Shared.Return(stacked);
            }
        }
        finally
        {
            if (concat is not null) ArrayPool<float>.Shared.Return(concat);
        }
    }

    private static float[] Widen(byte[] bytes, WireFormat wire) =>
        wire == WireFormat.Bf16 ? FloatBytes.ToFloats(Bf16.DecodeToFloatBytes(bytes)) : FloatBytes.ToFloats(bytes);

    private static byte[] Narrow(float[] values, WireFormat wire) =>
        wire == WireFormat.Bf16 ? Bf16.Encode(values) : FloatBytes.ToBytes(values);

    private static void AddInto(float[] sum, float[] addend) =>
        System.Numerics.Tensors.TensorPrimitives.Add(sum, addend, sum);
}
