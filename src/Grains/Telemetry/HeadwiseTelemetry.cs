using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Headwise.Contracts;
using Headwise.Grains.Decode;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Headwise.Kernels;
using Orleans.Runtime;

namespace Headwise.Grains.Telemetry;

/// <summary>
/// The one ActivitySource and Meter of Headwise, and the spans and measurements the grains make with them.
/// Exporters subscribe to <see cref="Name"/>; the silo's telemetry (src/Silo/Telemetry) wires them up.
/// </summary>
/// <remarks>
/// Spans: <see cref="ForwardSpan"/> in the coordinator, <see cref="HeadSpan"/> in each head grain, and
/// <see cref="OutputProjectionSpan"/> for Concat(Z)·W_O. Orleans' call spans (activity propagation plus a listener
/// on Microsoft.Orleans.Application) link them into one trace across silos.
/// Names follow the OpenTelemetry semantic conventions: attributes are namespaced (headwise.model, headwise.layer,
/// headwise.group, headwise.silo, headwise.kernel), durations are histograms in seconds named *.duration, and a failure
/// is error.type (the <see cref="ErrorCode"/> of a HeadwiseException, else the exception's type). The code that fails
/// hands its exception to the span it fails (<see cref="ForwardScope.Failed"/>, <see cref="HeadScope.Failed"/> from an
/// exception filter, so the stack is not unwound first; <see cref="RecordFailure"/> from a catch block); a span that
/// ends without its scope's Complete/Computed call and without an exception ends with status Error "did not complete".
/// </remarks>
public static class HeadwiseTelemetry
{
    public const string Name = "Headwise";

    public const string ForwardSpan = "headwise.forward";
    public const string HeadSpan = "headwise.head";
    public const string OutputProjectionSpan = "headwise.output_projection";

    /// <summary>Custom property of a head span holding an <see cref="AttentionPreview"/> when the request asked for attention.</summary>
    public const string AttentionProperty = "headwise.attention";

    /// <summary>RequestContext key: when the forward span started (UTC ticks), so each head can tell its queue time.</summary>
    public const string ForwardStartKey = "headwise.forward-start";

    public static readonly ActivitySource Source = new(Name);

    public static readonly Meter Meter = new(Name);

    /// <summary>Metric attribute: the model's name.</summary>
    public const string ModelAttribute = "headwise.model";
    /// <summary>Metric attribute: the layer's index.</summary>
    public const string LayerAttribute = "headwise.layer";
    /// <summary>Metric attribute: the head group's index (one head grain per group).</summary>
    public const string GroupAttribute = "headwise.group";
    /// <summary>Metric attribute: a silo's endpoint ("127.0.0.1:11111").</summary>
    public const string SiloAttribute = "headwise.silo";
    /// <summary>Metric attribute: the kernel a head ran on ("simd", "gpu", "reference").</summary>
    public const string KernelAttribute = "headwise.kernel";
    /// <summary>The OpenTelemetry attribute of a failed operation: what kind of failure.</summary>
    public const string ErrorTypeAttribute = "error.type";

    // Seconds from tens of microseconds (a small head on SIMD) to half a minute (the reference kernel, long sequences).
    private static readonly double[] SecondBuckets =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    /// <summary>Kernel time of one head group per forward pass, seconds. Attributes: model, layer, group, silo, kernel.</summary>
    public static readonly Histogram<double> HeadComputeDuration = Meter.CreateHistogram<double>(
        "headwise.head.compute.duration", "s", "Kernel time of one head group per forward pass", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondBuckets });

    /// <summary>Wall time of one forward pass in the coordinator, seconds; failed passes too, with error.type. Attributes: model, layer.</summary>
    public static readonly Histogram<double> ForwardDuration = Meter.CreateHistogram<double>(
        "headwise.forward.duration", "s", "Time of one forward pass in the coordinator", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondBuckets });

    /// <summary>Tokens (batch × tokens) per second of one forward pass. Tags: model, layer.</summary>
    public static readonly Histogram<double> ForwardTokensPerSecond = Meter.CreateHistogram<double>(
        "headwise.forward.throughput", "{token}/s", "Tokens per second of one forward pass (batch x tokens / duration)", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = [100, 1000, 10_000, 100_000, 1_000_000, 10_000_000] });

    /// <summary>Tokens the forward passes processed; its rate is the layer's tokens/s. Tags: model, layer.</summary>
    public static readonly Counter<long> ForwardTokens =
        Meter.CreateCounter<long>("headwise.forward.tokens", "{token}", "Tokens (batch x tokens) processed by forward passes");

    /// <summary>Bytes of X sent from the coordinator to other silos. Tags: model, layer, silo (the receiving one).</summary>
    public static readonly Counter<long> ScatteredBytes =
        Meter.CreateCounter<long>("headwise.scatter.bytes", "By", "Bytes of X the coordinator sent to other silos");

    /// <summary>Bytes of Z (and attention) the coordinator received from other silos. Tags: model, layer, silo (the sending one).</summary>
    public static readonly Counter<long> GatheredBytes =
        Meter.CreateCounter<long>("headwise.gather.bytes", "By", "Bytes of Z and attention the coordinator received from other silos");

    /// <summary>Forward passes under way in this silo's coordinators. Tags: model, layer.</summary>
    public static readonly UpDownCounter<long> ActiveForwards =
        Meter.CreateUpDownCounter<long>("headwise.forward.active", "{forward}", "Forward passes under way");

    /// <summary>Wall time of one decode step in the session's coordinator (heads, W_O), seconds; failed steps too, with
    /// error.type. Attributes: model, layer.</summary>
    public static readonly Histogram<double> DecodeDuration = Meter.CreateHistogram<double>(
        "headwise.decode.duration", "s", "Time of one decode step in the session's coordinator", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondBuckets });

    /// <summary>New tokens (batch × tokens) decode steps took in; prefills included. Tags: model, layer.</summary>
    public static readonly Counter<long> DecodeTokens =
        Meter.CreateCounter<long>("headwise.decode.tokens", "{token}", "Tokens (batch x new tokens) processed by decode steps");

    /// <summary>Decode steps one silo computed together in one pass over a layer's weights (1 when the layer was idle
    /// or batching is off). Tags: model, layer, silo.</summary>
    public static readonly Histogram<int> DecodeBatchSize = Meter.CreateHistogram<int>(
        "headwise.decode.batch.size", "{step}", "Decode steps computed together in one pass over a layer's weights on a silo", tags: null,
        new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256] });

    /// <summary>Time a decode step waited on a silo for the batch it ran in, seconds (0 when the layer was idle). Tags: model, layer, silo.</summary>
    public static readonly Histogram<double> DecodeBatchDelay = Meter.CreateHistogram<double>(
        "headwise.decode.batch.delay", "s", "Time a decode step waited on a silo for the batch it ran in", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondBuckets });

    /// <summary>Forward passes one coordinator ran together as one pass, for the forwards that may batch (1 for one that
    /// found a free pass; forwards too large to batch are not counted). Tags: model, layer, silo.</summary>
    public static readonly Histogram<int> ForwardBatchSize = Meter.CreateHistogram<int>(
        "headwise.forward.batch.size", "{forward}", "Forward passes run together as one pass on a silo", tags: null,
        new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64] });

    /// <summary>Time a forward waited on its coordinator's silo for the batch it ran in, seconds. Tags: model, layer, silo.</summary>
    public static readonly Histogram<double> ForwardBatchDelay = Meter.CreateHistogram<double>(
        "headwise.forward.batch.delay", "s", "Time a forward pass waited for the batch it ran in", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondBuckets });

    /// <summary>Span attribute of a decode step (the steps in the batch its heads ran in on this silo) and of a forward (the forwards in its pass).</summary>
    public const string BatchSizeAttribute = "headwise.batch.size";

    /// <summary>On a head span: the pieces of rows its forward pass was computed in as X arrived (absent: all at once).</summary>
    public const string PiecesAttribute = "headwise.pieces";
    /// <summary>On a head span computed in pieces: the rows per piece the pass's coordinator chose.</summary>
    public const string PieceRowsAttribute = "headwise.piece_rows";
    /// <summary>Span attribute of a decode step or a forward: milliseconds it waited on this silo for its batch.</summary>
    public const string BatchQueueAttribute = "headwise.batch.queue_ms";

    /// <summary>Decode span attribute: milliseconds of the step's heads and W_O on every silo, re-fills included.</summary>
    public const string HeadsMsAttribute = "headwise.heads_ms";

    /// <summary>Decode span attribute: milliseconds after the heads until the step counted (its stored inputs and record).</summary>
    public const string CommitMsAttribute = "headwise.commit_ms";

    /// <summary>Records one forward batch on <paramref name="silo"/> over the layer "{model}/{layer}" and its forwards' waits.</summary>
    public static void ForwardBatch(string layerKey, string silo, int forwards, ReadOnlySpan<double> waitedSeconds)
    {
        var (model, layer) = SplitKey(layerKey);
        var tags = new TagList { { ModelAttribute, model }, { LayerAttribute, layer }, { SiloAttribute, silo } };
        ForwardBatchSize.Record(forwards, tags);
        foreach (double waited in waitedSeconds) ForwardBatchDelay.Record(waited, tags);
    }

    /// <summary>Records one decode pass on <paramref name="silo"/> over the layer "{model}/{layer}" and its steps' waits.</summary>
    public static void DecodeBatch(string layerKey, string silo, int steps, ReadOnlySpan<double> waitedSeconds)
    {
        var (model, layer) = SplitKey(layerKey);
        var tags = new TagList { { ModelAttribute, model }, { LayerAttribute, layer }, { SiloAttribute, silo } };
        DecodeBatchSize.Record(steps, tags);
        foreach (double waited in waitedSeconds) DecodeBatchDelay.Record(waited, tags);
    }

    /// <summary>Head groups whose K/V cache a decode step rebuilt from the session's inputs. Tags: model, layer.</summary>
    public static readonly Counter<long> DecodeRefills =
        Meter.CreateCounter<long>("headwise.decode.refills", "{group}", "Head groups re-filled from the session's inputs (lost silo, evicted cache)");

    /// <summary>Decode sessions open on this silo's coordinators. Tags: model, layer.</summary>
    public static readonly UpDownCounter<long> OpenSessions =
        Meter.CreateUpDownCounter<long>("headwise.decode.sessions", "{session}", "Decode sessions open");

    // Every silo of the process (tests run several) reports its own caches, tagged with its name.
    private static readonly ConditionalWeakTable<SessionCaches, string> Caches = new();

    /// <summary>Bytes of K/V held by a silo's decode caches. Tags: silo.</summary>
    public static readonly ObservableGauge<long> CacheBytes = Meter.CreateObservableGauge("headwise.decode.cache.bytes",
        () => Caches.Select(c => new Measurement<long>(c.Key.Bytes, new KeyValuePair<string, object?>(SiloAttribute, c.Value))), "By",
        "Bytes of K/V held by this silo's decode caches");

    /// <summary>Decode caches a silo evicted for its byte cap or idleness. Tags: silo.</summary>
    public static readonly ObservableCounter<long> CacheEvictions = Meter.CreateObservableCounter("headwise.decode.cache.evictions",
        () => Caches.Select(c => new Measurement<long>(c.Key.Evictions, new KeyValuePair<string, object?>(SiloAttribute, c.Value))), "{cache}",
        "Decode caches evicted for the byte cap or idleness");

    /// <summary>Reports <paramref name="caches"/> under <paramref name="silo"/> for as long as it lives.</summary>
    public static void Track(SessionCaches caches, string silo) => Caches.AddOrUpdate(caches, silo);

    /// <summary>The attributes of a layer's measurements.</summary>
    public static TagList LayerTags(string model, int layer) => new() { { ModelAttribute, model }, { LayerAttribute, layer } };

    /// <summary>Starts <see cref="ForwardSpan"/> for a pass of the layer "{model}/{layer}"; dispose it when the pass ends.</summary>
    public static ForwardScope StartForward(string layerKey, ForwardCommand command, AttentionSpec spec) => new(layerKey, command, spec);

    /// <summary>Starts <see cref="HeadSpan"/> in the head grain "{model}/{layer}/{group}"; dispose it when the call ends.</summary>
    public static HeadScope StartHead(string headKey, HeadWork work, HeadGroupShape shape, string silo, string kernel) =>
        new(headKey, work, shape, silo, kernel);

    /// <summary>Starts <see cref="OutputProjectionSpan"/>: y = concat·W_O + b_O over [rows × concatWidth] · [concatWidth × modelDim].</summary>
    public static Activity? StartOutputProjection(int rows, int concatWidth, int modelDim)
    {
        var activity = Source.StartActivity(OutputProjectionSpan);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("headwise.rows", rows);
            activity.SetTag("headwise.concat_width", concatWidth);
            activity.SetTag("headwise.model_dim", modelDim);
            activity.SetTag("headwise.flops", 2L * rows * concatWidth * modelDim);
        }
        return activity;
    }

    /// <summary>"gpt2/3" → ("gpt2", 3); "gpt2/3/7" → ("gpt2/3", 7).</summary>
    internal static (string Prefix, int Index) SplitKey(string key)
    {
        int slash = key.LastIndexOf('/');
        return slash > 0 && int.TryParse(key.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int index)
            ? (key[..slash], index)
            : (key, -1);
    }

    /// <summary>
    /// Ends <paramref name="activity"/> as failed by <paramref name="exception"/>: status Error with its message, an
    /// exception event, error.type. Returns false, so that it also serves as an exception filter
    /// (<c>catch (Exception e) when (HeadwiseTelemetry.RecordFailure(activity, e))</c>) that records and catches nothing.
    /// </summary>
    public static bool RecordFailure(Activity? activity, Exception exception)
    {
        if (activity is null) return false;
        activity.SetStatus(ActivityStatusCode.Error, exception.Message);
        activity.AddException(exception);
        activity.SetTag(ErrorTypeAttribute, ErrorType(exception));
        return false;
    }

    /// <summary>error.type of <paramref name="exception"/>: a HeadwiseException's code ("FailedPrecondition"), else the
    /// exception's full type name: few distinct values, as metric attributes need.</summary>
    public static string ErrorType(Exception exception) =>
        exception is HeadwiseException headwise ? headwise.Code.ToString() : exception.GetType().FullName ?? "_OTHER";

    // Ended without its success call and without an exception handed to it (a scope disposed early).
    private static void EndIncomplete(Activity activity)
    {
        if (activity.Status != ActivityStatusCode.Error) activity.SetStatus(ActivityStatusCode.Error, "did not complete");
    }

    /// <summary>
    /// The span and measurements of one forward pass in the coordinator. <see cref="Complete"/> on success; disposing
    /// without it marks the span as failed.
    /// </summary>
    public sealed class ForwardScope : IDisposable
    {
        private readonly Activity? _activity;
        private readonly TagList _tags;
        private readonly long _started = Stopwatch.GetTimestamp();
        private readonly long _tokens;
        private readonly string _model;
        private readonly int _layer;
        private bool _completed;
        private string? _errorType;

        internal ForwardScope(string layerKey, ForwardCommand command, AttentionSpec spec)
        {
            (_model, _layer) = SplitKey(layerKey);
            _tokens = (long)command.Batch * command.Tokens;
            _tags = LayerTags(_model, _layer);
            ActiveForwards.Add(1, _tags);

            _activity = Source.StartActivity(ForwardSpan);
            if (_activity is null) return;
            // Every head compares its start with this to report its queue time (scatter, network, waiting for the grain).
            RequestContext.Set(ForwardStartKey, _activity.StartTimeUtc.Ticks);
            if (!_activity.IsAllDataRequested) return;
            _activity.SetTag("headwise.model", _model);
            _activity.SetTag("headwise.layer", _layer);
            _activity.SetTag("headwise.batch", command.Batch);
            _activity.SetTag("headwise.tokens", command.Tokens);
            _activity.SetTag("headwise.groups", spec.GroupCount);
            _activity.SetTag("headwise.heads", spec.HeadCount);
            _activity.SetTag("headwise.causal", command.Causal);
            _activity.SetTag("headwise.return_attention", command.ReturnAttention);
        }

        /// <summary>The pass succeeded: records its duration, tokens, throughput and traffic, and names the straggler.</summary>
        public void Complete(ForwardResult result)
        {
            _completed = true;
            double seconds = Stopwatch.GetElapsedTime(_started).TotalSeconds;
            ForwardDuration.Record(seconds, _tags);
            ForwardTokens.Add(_tokens, _tags);
            if (seconds > 0) ForwardTokensPerSecond.Record(_tokens / seconds, _tags);

            long scattered = 0, gathered = 0;
            foreach (var silo in result.Silos)
            {
                var siloTags = new TagList { { ModelAttribute, _model }, { LayerAttribute, _layer }, { SiloAttribute, silo.Silo } };
                if (silo.BytesSent > 0) ScatteredBytes.Add(silo.BytesSent, siloTags);
                if (silo.BytesReceived > 0) GatheredBytes.Add(silo.BytesReceived, siloTags);
                scattered += silo.BytesSent;
                gathered += silo.BytesReceived;
            }

            if (_activity is not { IsAllDataRequested: true }) return;
            _activity.SetTag("headwise.bytes_scattered", scattered);
            _activity.SetTag("headwise.bytes_gathered", gathered);
            _activity.SetTag("headwise.silos", result.Silos.Length);
            // The forward pass waits for its slowest head: name it where people look first.
            if (result.Heads.Length > 0)
            {
                var straggler = result.Heads.MaxBy(h => h.CallMs)!;
                _activity.SetTag("headwise.straggler.group", straggler.Group);
                _activity.SetTag("headwise.straggler.silo", straggler.Silo);
                _activity.SetTag("headwise.straggler.call_ms", Math.Round(straggler.CallMs, 3));
            }
        }

        /// <summary>
        /// The pass failed with <paramref name="exception"/>: the span gets it, the duration is recorded with error.type.
        /// Returns false, for an exception filter: <c>catch (Exception e) when (telemetry.Failed(e))</c>.
        /// </summary>
        public bool Failed(Exception exception)
        {
            _errorType = ErrorType(exception);
            return RecordFailure(_activity, exception);
        }

        public void Dispose()
        {
            ActiveForwards.Add(-1, _tags);
            if (!_completed)
            {
                var tags = _tags;
                tags.Add(ErrorTypeAttribute, _errorType ?? "_OTHER");
                ForwardDuration.Record(Stopwatch.GetElapsedTime(_started).TotalSeconds, tags);
            }
            if (_activity is null) return;
            RequestContext.Remove(ForwardStartKey);
            if (!_completed) EndIncomplete(_activity);
            _activity.Dispose();
        }
    }

    /// <summary>
    /// The span and measurements of one head group's call. <see cref="Computed"/> once the kernel ran; disposing
    /// without it marks the span as failed.
    /// </summary>
    public sealed class HeadScope : IDisposable
    {
        private readonly Activity? _activity;
        private readonly TagList _tags;
        private readonly HeadWork _work;
        private readonly HeadGroupShape _shape;
        private readonly int _group;
        private bool _completed;

        internal HeadScope(string headKey, HeadWork work, HeadGroupShape shape, string silo, string kernel)
        {
            _work = work;
            _shape = shape;
            var (layerKey, group) = SplitKey(headKey);
            var (model, layer) = SplitKey(layerKey);
            _group = group;
            _tags = new TagList { { ModelAttribute, model }, { LayerAttribute, layer }, { GroupAttribute, group }, { SiloAttribute, silo }, { KernelAttribute, kernel } };

            _activity = Source.StartActivity(HeadSpan);
            if (_activity is not { IsAllDataRequested: true }) return;
            int firstHead = group * shape.QueryHeads;
            _activity.SetTag("headwise.model", model);
            _activity.SetTag("headwise.layer", layer);
            _activity.SetTag("headwise.group", group);
            _activity.SetTag("headwise.heads", string.Join(',', Enumerable.Range(firstHead, shape.QueryHeads)));
            _activity.SetTag("headwise.silo", silo);
            _activity.SetTag("headwise.kernel", kernel);
            _activity.SetTag("headwise.batch", work.Batch);
            _activity.SetTag("headwise.tokens", work.Tokens);
            _activity.SetTag("headwise.flops", Flops(work.Batch, work.Tokens, shape));
            if (RequestContext.Get(ForwardStartKey) is long forwardStart)
                _activity.SetTag("headwise.queue_ms", Math.Round((_activity.StartTimeUtc.Ticks - forwardStart) / (double)TimeSpan.TicksPerMillisecond, 3));
        }

        /// <summary>The kernel ran: records its time and, when the request asked for attention, a preview for the dashboard.</summary>
        /// <param name="attention">[batch, g, tokens, tokens] float32 bytes, or null.</param>
        public void Computed(double computeMs, byte[]? attention)
        {
            _completed = true;
            HeadComputeDuration.Record(computeMs / 1000, _tags);
            if (_activity is not { IsAllDataRequested: true }) return;
            _activity.SetTag("headwise.compute_ms", Math.Round(computeMs, 3));
            if (attention is not null)
                _activity.SetCustomProperty(AttentionProperty,
                    AttentionPreview.FromFirstSequence(FloatBytes.AsFloats(attention), _work.Tokens, _shape.QueryHeads, _group * _shape.QueryHeads));
        }

        /// <summary>Sets a tag on the head's span, when it is recorded.</summary>
        public void Tag(string name, object value)
        {
            if (_activity is { IsAllDataRequested: true }) _activity.SetTag(name, value);
        }

        /// <summary>The call failed with <paramref name="exception"/>; returns false, for an exception filter.</summary>
        public bool Failed(Exception exception) => RecordFailure(_activity, exception);

        public void Dispose()
        {
            if (_activity is null) return;
            if (!_completed) EndIncomplete(_activity);
            _activity.Dispose();
        }

        // Q = X·W_Q (g heads), K and V once per group, then Q·Kᵀ and P·V for each query head; biases and softmax left out.
        private static long Flops(int batch, int tokens, HeadGroupShape shape)
        {
            long t = tokens, d = shape.ModelDim, dh = shape.HeadDim, g = shape.QueryHeads;
            return batch * (2 * t * d * dh * (g + 2) + 4 * g * t * t * dh);
        }
    }
}

/// <summary>
/// A small picture of a head group's attention for the dashboard: sequence 0 of the batch, one
/// <see cref="Size"/>×<see cref="Size"/> matrix per query head, rows are queries and columns keys. Longer sequences
/// are averaged over blocks of queries and keys, so a causal mask still shows as a triangle.
/// </summary>
/// <param name="Tokens">T of the request.</param>
/// <param name="Size">min(T, <see cref="MaxSize"/>).</param>
/// <param name="Heads">The query head index of each matrix.</param>
/// <param name="Values">Per query head: [Size × Size] row-major mean probabilities.</param>
[GenerateSerializer, Immutable, Alias("headwise.attention-preview")]
public sealed record AttentionPreview(
    [property: Id(0)] int Tokens,
    [property: Id(1)] int Size,
    [property: Id(2)] int[] Heads,
    [property: Id(3)] float[][] Values)
{
    public const int MaxSize = 64;

    /// <param name="attention">[batch, g, T, T]; only sequence 0 is read.</param>
    public static AttentionPreview FromFirstSequence(ReadOnlySpan<float> attention, int tokens, int queryHeads, int firstHead)
    {
        int size = Math.Min(tokens, MaxSize);
        var values = new float[queryHeads][];
        for (int k = 0; k < queryHeads; k++)
        {
            var matrix = attention.Slice(k * tokens * tokens, tokens * tokens);
            var preview = values[k] = new float[size * size];
            for (int row = 0; row < size; row++)
            {
                int q0 = row * tokens / size, q1 = (row + 1) * tokens / size;
                for (int column = 0; column < size; column++)
                {
                    int k0 = column * tokens / size, k1 = (column + 1) * tokens / size;
                    double sum = 0;
                    for (int q = q0; q < q1; q++)
                        for (int key = k0; key < k1; key++)
                            sum += matrix[q * tokens + key];
                    preview[row * size + column] = (float)(sum / ((q1 - q0) * (k1 - k0)));
                }
            }
        }
        return new AttentionPreview(tokens, size, Enumerable.Range(firstHead, queryHeads).ToArray(), values);
    }
}
