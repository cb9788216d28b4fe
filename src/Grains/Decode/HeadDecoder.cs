using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Kernels;

namespace Headwise.Grains.Decode;

/// <summary>
/// A head grain's part of a decode step: find the session's K/V caches on this silo (one per sequence), append the
/// new tokens, compute their Z. A head without a cache at the asked position answers with no output, and the
/// session's coordinator re-sends everything the session has seen with <see cref="HeadDecodeWork.Restart"/>.
/// </summary>
internal static class HeadDecoder
{
    public static Rotary RotaryOf(AttentionSpec spec) => spec.HasRope ? new Rotary(spec.RopeTheta, spec.RopeDim, ScalingOf(spec.RopeScaling)) : Rotary.None;

    /// <summary>The spec's rope_scaling as the kernels take it (the spec was validated: the type is one of these).</summary>
    private static RotaryScaling ScalingOf(RopeScaling? scaling) => scaling?.Type switch
    {
        null => default,
        RopeScaling.Linear => new RotaryScaling(RotaryScalingKind.Linear, scaling.Factor),
        RopeScaling.Llama3 => new RotaryScaling(RotaryScalingKind.Llama3, scaling.Factor, scaling.LowFreqFactor, scaling.HighFreqFactor,
            scaling.OriginalMaxPositions),
        _ => throw new HeadwiseException(ErrorCode.InvalidArgument, $"spec.rope_scaling.type '{EchoedValue.Of(scaling.Type)}' is not one Headwise computes."),
    };

    public static HeadDecodeOutcome Decode(string head, HeadDecodeWork work, AttentionSpec spec, HeadGroupWeights weights, Guid version,
        IHeadKernel kernel, string silo, SessionCaches caches)
    {
        var shape = weights.Shape;
        if (work.Input.Length != (long)work.Batch * work.Tokens * shape.ModelDim * sizeof(float))
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"input has {work.Input.Length} bytes; [{work.Batch}, {work.Tokens}, {shape.ModelDim}] float32 needs {(long)work.Batch * work.Tokens * shape.ModelDim * 4}.");

        var sequences = work.Restart ? null : caches.Find(head, work.Session);
        if (!work.Restart && (sequences is null || sequences.Length != work.Batch || sequences[0].Position != work.Position))
            return new HeadDecodeOutcome { Output = null, Silo = silo, WeightsVersion = version };
        sequences ??= caches.Start(head, work, shape.HeadDim, spec.Window);

        var options = new AttentionOptions(spec.Scale, Causal: true, spec.Window);
        var rotary = RotaryOf(spec);
        var output = new byte[checked(work.Batch * work.Tokens * shape.QueryWidth * sizeof(float))];
        var x = FloatBytes.AsFloats(work.Input);
        var z = FloatBytes.AsFloats(output.AsSpan());
        long started = Stopwatch.GetTimestamp();
        for (int sequence = 0; sequence < work.Batch; sequence++)
        {
            IncrementalAttention.Decode(kernel, weights, options, rotary,
                x.Slice(sequence * work.Tokens * shape.ModelDim, work.Tokens * shape.ModelDim), work.Tokens,
                sequences[sequence],
                z.Slice(sequence * work.Tokens * shape.QueryWidth, work.Tokens * shape.QueryWidth));
        }
        double computeMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        caches.Account(head, work.Session);
        return new HeadDecodeOutcome { Output = output, Silo = silo, ComputeMs = computeMs, WeightsVersion = version };
    }
}
