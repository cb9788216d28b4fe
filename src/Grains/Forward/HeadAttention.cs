using System.Diagnostics;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;
using Headwise.Kernels;

namespace Headwise.Grains.Forward;

/// <summary>
/// One head group's Z for a forward pass, on the calling thread: the kernel's Attend, one sequence at a time, with the
/// head's span and compute-time measurement. The silo's pass (<see cref="SiloPass"/>) runs it for every head active
/// here, on the compute threads.
/// </summary>
internal static class HeadAttention
{
    /// <param name="x">X: [B, T, D] float32.</param>
    /// <param name="z">Z: [B, T, g·dh].</param>
    /// <param name="probabilities">[B, g, T, T], or empty when the request did not ask for attention.</param>
    /// <returns>Kernel milliseconds.</returns>
    public static double Run(string headKey, HeadWork work, ReadOnlySpan<float> x, LocalHead head, IHeadKernel kernel,
        string silo, CancelledForwards cancelled, CancellationToken cancellationToken, Span<float> z, Span<float> probabilities,
        byte[]? attentionBytes)
    {
        var spec = head.Spec;
        var weights = head.Weights;
        var shape = weights.Shape;
        using var telemetry = HeadwiseTelemetry.StartHead(headKey, work, shape, silo, kernel.Name);
        var options = new AttentionOptions(spec.Scale, work.Causal, spec.Window);
        var rotary = HeadDecoder.RotaryOf(spec);

        long started = Stopwatch.GetTimestamp();
        // One sequence at a time: a caller that gives up (deadline, cancellation) is heard between sequences rather
        // than after the whole batch.
        int inputPer = work.Tokens * spec.ModelDim, outputPer = work.Tokens * shape.QueryWidth;
        int attentionPer = shape.QueryHeads * work.Tokens * work.Tokens;
        try
        {
            for (int b = 0; b < work.Batch; b++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (cancelled.IsCancelled(work.ForwardId))
                    throw new OperationCanceledException($"forward {work.ForwardId} was called off by its coordinator.");
                var xb = x.Slice(b * inputPer, inputPer);
                var zb = z.Slice(b * outputPer, outputPer);
                var pb = probabilities.IsEmpty ? Span<float>.Empty : probabilities.Slice(b * attentionPer, attentionPer);
                ReadOnlySpan<int> lb = work.Lengths.Length == 0 ? ReadOnlySpan<int>.Empty : work.Lengths.AsSpan(b, 1);
                if (spec.HasRope && !kernel.SupportsRotary) // e.g. the GPU kernel: projections + rotary + the incremental path
                    IncrementalAttention.Forward(kernel, xb, 1, work.Tokens, lb, weights, options, rotary, zb, pb);
                else
                    kernel.Attend(xb, 1, work.Tokens, lb, weights, options with { Rotary = rotary }, zb, pb);
            }
        }
        catch (Exception e) when (telemetry.Failed(e))
        {
            throw; // not reached: the filter records the failure on the span and lets the exception pass
        }
        double computeMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        telemetry.Computed(computeMs, attentionBytes);
        return computeMs;
    }
}
