namespace Headwise.Kernels;

/// <summary>
/// The one place that decides how kernels use threads.
/// <list type="bullet">
/// <item><c>Attend</c> runs on the calling thread: the head grains of a layer already run concurrently on a
/// silo, one per group, so splitting a head further would only make them compete for the same cores
/// (docs/performance.md measures 12 heads on 2 cores, one thread each).</item>
/// <item><c>Project</c> (the coordinator's W_O, one call per forward pass, after the heads are done) splits
/// its rows over <see cref="Environment.ProcessorCount"/> threads when the work is large enough to pay for the
/// hand-off: the calling thread and ProcessorCount − 1 parked helper threads take row chunks from a shared
/// counter, so a helper that wakes late (its core busy elsewhere) only takes fewer chunks. One split runs at a
/// time; a second caller meanwhile runs its rows alone instead of oversubscribing the cores.</item>
/// </list>
/// Helpers are plain background threads rather than thread-pool items so no queued item outlives its call:
/// the job object is reused and the steady state allocates nothing.
/// </summary>
internal static class KernelParallelism
{
    /// <summary>Multiply-adds below which one thread finishes before others could be woken to help.</summary>
    public const long InlineWorkLimit = 1L << 20;

    public delegate void RowRangeBody<TState>(TState state, int start, int end);

    /// <summary>
    /// Calls <paramref name="body"/> on disjoint row ranges covering [0, rows), inline or in parallel; a range
    /// starts on a multiple of <paramref name="alignment"/> (the GEMM's 8-row register block, by default).
    /// The state travels as an argument so a static lambda serves; neither path allocates in the steady state.
    /// </summary>
    /// <param name="chunksPerThread">Ranges per thread: 2 lets a thread that starts late still find work; 1 suits a
    /// body with a fixed cost per range (the GEMM packs its B blocks once per range).</param>
    public static void ForRowRanges<TState>(int rows, long workPerRow, TState state, RowRangeBody<TState> body, int alignment = Gemm.RowBlock,
        int chunksPerThread = 2)
    {
        int parts = PartCount(rows, workPerRow);
        if (parts <= 1 || KernelThreads.OwnThreadOnly || !Helpers.TryEnter())
        {
            body(state, 0, rows);
            return;
        }
        try
        {
            RowRangeJob<TState>.Run(rows, parts, alignment, chunksPerThread, state, body);
        }
        finally
        {
            Helpers.Exit();
        }
    }

    /// <summary>How many threads <see cref="ForRowRanges"/> uses for this much work.</summary>
    public static int PartCount(int rows, long workPerRow) =>
        rows <= 1 || (long)rows * workPerRow <= InlineWorkLimit ? 1 : Math.Min(Environment.ProcessorCount, rows);

    /// <summary>A job the helpers can join: they take chunks until none is left.</summary>
    private abstract class Job
    {
        public abstract void Work();
    }

    /// <summary>The parked helper threads and the one job they may join.</summary>
    private static class Helpers
    {
        private static readonly SemaphoreSlim wake = new(0);
        private static readonly object startLock = new();
        private static int owner;     // 1 while a caller owns the helpers
        private static int started;   // helper threads created so far
        private static Job? current;  // the job open for joining, or null
        private static int active;    // helpers inside a job's Work

        public static bool TryEnter() => Interlocked.CompareExchange(ref owner, 1, 0) == 0;

        public static void Exit() => Volatile.Write(ref owner, 0);

        /// <summary>Opens <paramref name="job"/> to up to <paramref name="count"/> helpers (the caller owns them).</summary>
        public static void Open(Job job, int count)
        {
            EnsureStarted(count);
            Volatile.Write(ref current, job);
            wake.Release(count);
        }

        /// <summary>Closes the job to late helpers and waits for the ones inside it to leave, so it can be reused.</summary>
        public static void Close()
        {
            Volatile.Write(ref current, null);
            var spinner = new SpinWait();
            while (Volatile.Read(ref active) != 0) spinner.SpinOnce();
        }

        private static void EnsureStarted(int count)
        {
            if (Volatile.Read(ref started) >= count) return;
            lock (startLock)
            {
                while (started < count)
                {
                    new Thread(Loop) { IsBackground = true, Name = $"Headwise kernel helper {started + 1}" }.Start();
                    started++;
                }
            }
        }

        private static void Loop()
        {
            while (true)
            {
                wake.Wait();
                var job = Volatile.Read(ref current);
                if (job is null) continue;
                Interlocked.Increment(ref active);
                // Joined only if the job is still open: Close may have run between the read and the increment.
                if (ReferenceEquals(Volatile.Read(ref current), job)) job.Work();
                Interlocked.Decrement(ref active);
            }
        }
    }

    /// <summary>One parallel call's rows, chunks and body; one instance per state type, reused call after call.</summary>
    private sealed class RowRangeJob<TState> : Job
    {
        private static RowRangeJob<TState>? cached;

        private readonly ManualResetEventSlim finished = NewFinishedEvent();
        private TState state = default!;
        private RowRangeBody<TState> body = null!;
        private int rows, chunkRows, chunkCount;
        private int nextChunk, doneChunks;
        private Exception? failure;

        // ManualResetEventSlim allocates its lock object the first time a Wait has to block, which can be any call of the
        // steady state (whenever the helpers first finish after the caller): one short blocking wait here creates it.
        private static ManualResetEventSlim NewFinishedEvent()
        {
            var finished = new ManualResetEventSlim(false);
            finished.Wait(1);
            return finished;
        }

        public static void Run(int rows, int parts, int alignment, int chunksPerThread, TState state, RowRangeBody<TState> body)
        {
            // Only the owner of the helpers gets here, so one cached job per state type is never shared.
            var job = cached ??= new RowRangeJob<TState>();
            job.state = state;
            job.body = body;
            job.rows = rows;
            int chunk = (rows + chunksPerThread * parts - 1) / (chunksPerThread * parts);
            job.chunkRows = (chunk + alignment - 1) / alignment * alignment;
            job.chunkCount = (rows + job.chunkRows - 1) / job.chunkRows;
            job.nextChunk = 0;
            job.doneChunks = 0;
            job.failure = null;
            job.finished.Reset();

            Helpers.Open(job, Math.Min(parts, job.chunkCount) - 1);
            job.Work();
            if (Volatile.Read(ref job.doneChunks) < job.chunkCount) job.finished.Wait();
            Helpers.Close();
            var failure = job.failure;
            job.state = default!;
            job.body = null!;
            if (failure is not null) throw new AggregateException(failure);
        }

        public override void Work()
        {
            int chunk;
            while ((chunk = Interlocked.Increment(ref nextChunk) - 1) < chunkCount)
            {
                try
                {
                    int start = chunk * chunkRows;
                    body(state, start, Math.Min(rows, start + chunkRows));
                }
                catch (Exception exception)
                {
                    Interlocked.CompareExchange(ref failure, exception, null);
                }
                if (Interlocked.Increment(ref doneChunks) == chunkCount) finished.Set();
            }
        }
    }
}
