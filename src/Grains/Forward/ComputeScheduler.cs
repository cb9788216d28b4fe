using System.Collections.Concurrent;

namespace Headwise.Grains.Forward;

/// <summary>
/// The threads that run head kernels on this silo, one per core it may use (Headwise__ComputeThreads, default the
/// process's affinity count). Heads do not compute as long CPU-bound turns on the .NET thread pool: Orleans'
/// messaging, Kestrel and the relays share that pool, and a silo pinned to one core was measured sending its remote
/// scatter only after its own heads had finished (a 157 ms remote call for 78 ms of compute). With kernels on their
/// own threads the pool keeps serialising, sending and answering while the cores compute; the operating system shares
/// a core between the two, so a message waits a time slice, not a whole pass.
/// </summary>
public sealed class ComputeScheduler : TaskScheduler, IDisposable
{
    [ThreadStatic] private static ComputeScheduler? t_owner;
    private readonly BlockingCollection<Task> _queue = new();
    private readonly Thread[] _threads;

    /// <param name="pin">
    /// Keep thread i on the i-th CPU this process may use, when it may use exactly as many CPUs as there are threads
    /// (Linux): a silo given its own CPUs (taskset, a Kubernetes static CPU policy). A process that may run on more CPUs
    /// than it has threads is not pinned: under a CPU quota (a Kubernetes limit without a static policy) every pod of a
    /// node sees all its CPUs, and pinning each to the first ones would stack them on the same cores. Unpinned,
    /// a compute thread woken for a pass was often placed on the core its waker or the other compute thread was using,
    /// while the other core idled: the sched_switch trace of a one-silo pass on the 2-vCPU dev machine showed woken
    /// compute threads waiting 145 ms in 4 s behind another compute thread on their core (docs/scaling.md).
    /// </param>
    public ComputeScheduler(int threads, bool pin = false)
    {
        _threads = new Thread[Math.Max(1, threads)];
        var cpus = pin ? CpuAffinity.Allowed() : [];
        if (cpus.Length != _threads.Length) cpus = [];
        for (int i = 0; i < _threads.Length; i++)
        {
            int cpu = cpus.Length > 0 ? cpus[i] : -1;
            _threads[i] = new Thread(() => Loop(cpu)) { IsBackground = true, Name = $"Headwise compute {i + 1}" };
            _threads[i].Start();
        }
        Pinned = cpus.Length > 0;
    }

    /// <summary>Whether each compute thread keeps to a CPU of its own.</summary>
    public bool Pinned { get; }

    public override int MaximumConcurrencyLevel => _threads.Length;

    /// <summary>Runs <paramref name="work"/> on a compute thread; the caller's continuation returns to its own scheduler.</summary>
    public Task<T> Run<T>(Func<T> work, CancellationToken cancellationToken = default) =>
        Task.Factory.StartNew(work, cancellationToken, TaskCreationOptions.DenyChildAttach, this);

    /// <summary>Calls <paramref name="body"/> for 0..count−1 across the compute threads (the calling one included).</summary>
    public void For(int count, Action<int> body)
    {
        if (count == 1)
        {
            body(0);
            return;
        }
        var options = new ParallelOptions { TaskScheduler = this, MaxDegreeOfParallelism = _threads.Length };
        try
        {
            Parallel.For(0, count, options, body);
        }
        catch (AggregateException e)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(FirstFailure.Of(e));
        }
    }

    protected override void QueueTask(Task task) => _queue.Add(task);

    // Inline only on our own threads: a thread-pool caller waiting on a compute task must not run the kernel itself.
    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) =>
        ReferenceEquals(t_owner, this) && TryExecuteTask(task);

    protected override IEnumerable<Task> GetScheduledTasks() => _queue.ToArray();

    private void Loop(int cpu)
    {
        t_owner = this;
        if (cpu >= 0) CpuAffinity.PinCurrentThread(cpu);
        // Kernels on these threads stay on them: a big call is split over the compute threads by its caller (SiloPass).
        Kernels.KernelThreads.OwnThreadOnly = true;
        foreach (var task in _queue.GetConsumingEnumerable()) TryExecuteTask(task);
    }

    public void Dispose() => _queue.CompleteAdding();
}
