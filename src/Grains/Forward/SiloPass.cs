using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Grains.Decode;
using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;
using Headwise.Kernels;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Headwise.Grains.Forward;

/// <summary>
/// What one silo does in a forward pass or a decode step, as the coordinator (the tree's root) or as a relay: send X on
/// to the silos below it first, compute its own head groups on the compute threads, multiply their Z by their rows of W_O
/// into one partial sum (or keep the Z when the pass gathers), then add the answers of the silos below. One code path for
/// the root and every relay, for forwards and decode steps, so a pass on one silo is the same computation as on many.
/// </summary>
public sealed partial class SiloPass(
    IGrainFactory grains,
    LocalHeads localHeads,
    IHeadKernel kernel,
    SiloIdentity silo,
    CancelledForwards cancelled,
    SessionCaches caches,
    ComputeScheduler compute,
    TensorChannel channel,
    StackedOutputRows stackedRows,
    HeadRescue rescue,
    StepBatcher batcher,
    IClusterMembershipService membership,
    ISiloMetadataCache metadata,
    TensorBuffers buffers,
    Microsoft.Extensions.Options.IOptions<ScatterOptions> scatter)
{
    private static readonly TimeSpan ChannelWait = TimeSpan.FromSeconds(10);
    private const int SmallStepRows = 16;

    /// <param name="request">X in its wire format, this silo's groups, and the silos below.</param>
    /// <param name="localInput">The float32 X for this silo's own heads when the caller already has it (the root).</param>
    /// <param name="encode">Encode the answer in the request's wire format (false at the root, which reads it here).</param>
    public async Task<SiloPassAnswer> Run(SiloPassRequest request, byte[]? localInput, bool encode, CancellationToken cancellationToken)
    {
        long received = Stopwatch.GetTimestamp();
        // A forward pass's big arrays (X off the tensor channel, partial sums) are its own, from TensorBuffers: back to the
        // pool once the pass has succeeded here. A decode step's come from its batch.
        bool pooled = request.Work is not null;
        byte[]? receivedInput = null;
        // X off the tensor channel is claimed as soon as its frame begins: its bytes keep arriving into Work.Input, so
        // nothing reads that before `arriving` says the bytes are in.
        TensorProgress? arriving = null;
        if (request.InputTicket != Guid.Empty && request.Work is { } sent)
        {
            arriving = await ClaimTensor(request.InputTicket, cancellationToken);
            request = request with { Work = sent with { Input = receivedInput = arriving.Buffer }, InputTicket = Guid.Empty };
        }
        var input = arriving ?? (request.Work is { } whole ? TensorProgress.Complete(whole.Input) : null);
        var sends = new SendsOfX();
        // The silos below first: their X is on its way (streamed on as it arrives here) before this silo's cores are busy.
        var ownDone = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        var replies = new List<Guid>();
        var children = ScatterTree.Children(request.Subtree, request.Fanout).Select(c =>
        {
            var reply = request.Work is null ? Guid.Empty : Guid.NewGuid();
            replies.Add(reply);
            return CallChild(request with { ReplyTicket = reply }, c.Child, c.Below, localInput, received, ownDone.Task, input, sends, cancellationToken);
        }).ToList();

        Computed own;
        List<SiloAssignment> moved;
        // This silo's partial sum, computed in pieces, leaves for its parent block by block under this ticket.
        TensorProgress? partialOut = null;
        Task? partialSent = null;
        var streamedTicket = Guid.Empty;
        // A relay's own partial as it computes it, in the buffer that goes up, and the sum with its children's, block by block.
        TensorProgress? ownOut = null;
        Task? reduced = null;
        try
        {
            List<(int Group, string Key, LocalHead Head)> local;
            (local, moved) = await Resolve(request);
            // A decode step of a few tokens is a fraction of a millisecond of work: the hop to a compute thread and back
            // would cost as much, so it runs here (its heads still spread over the compute threads).
            bool small = request.Step is { } step && step.Batch * step.Tokens <= SmallStepRows;
            // Pieces cost the kernels 2–17% (every group's Q, K and V out of L2 at once; bench `pieces`), so they run only
            // where they overlap something: X still arriving, or a partial sum that can leave block by block.
            bool pieces = arriving is not null && InPieces(request, local, kernel);
            if (pieces && encode && request.Work!.Wire == WireFormat.F32)
                (partialOut, streamedTicket, partialSent) = await StreamPartial(request, cancellationToken);
            if (partialOut is not null && children.Count > 0)
            {
                ownOut = new TensorProgress(partialOut.Buffer);
                reduced = ReduceUp(ownOut, children.Zip(replies, (call, reply) => new ChildPartial(this, call, reply, cancellationToken)).ToList(),
                    partialOut, StackedModelDim(request) * sizeof(float), cancellationToken);
            }
            if (pieces && (partialOut is not null || !arriving!.IsComplete || scatter.Value.PiecesAlways))
                own = await ComputeInPieces(request, arriving!, local, received, ownOut ?? partialOut, cancellationToken);
            else
            {
                if (arriving is not null) await Arrived(arriving, arriving.Length, cancellationToken);
                own = local.Count == 0 ? new Computed(null, [], 0)
                : small && batcher.Takes(request) ? await Batched(request, local, received, inline: localInput is not null, cancellationToken)
                : small ? Compute(request, localInput, local, received, cancellationToken)
                : await compute.Run(() => Compute(request, localInput, local, received, cancellationToken), cancellationToken);
            }
            if (local.Count > 0 && request.Step is { } unbatched && !(small && batcher.Takes(request)))
            {
                // A step computed on its own is a batch of one: the batch figures compare batching on and off.
                batcher.Stats.Record(request.Layer, 1, unbatched.Batch * unbatched.Tokens);
                HeadwiseTelemetry.DecodeBatch(request.Layer, silo.Name, 1, [0.0]);
            }
        }
        catch (Exception e)
        {
            partialOut?.Fail(e); // its send gives up, and the parent's claim fails, rather than waiting for bytes that never come
            ownOut?.Fail(e);
            Observe(partialSent);
            Observe(reduced);
            ownDone.TrySetResult(Stopwatch.GetElapsedTime(received));
            // The pass fails with this silo's error, but only once the silos below are done: none of them may run on
            // into the caller's next pass or step.
            try { await Task.WhenAll(children); } catch (Exception) { }
            throw;
        }

        ownDone.TrySetResult(Stopwatch.GetElapsedTime(received));
        var wire = request.Work?.Wire ?? WireFormat.F32;
        var answers = new List<GroupAnswer>(own.Groups);
        var allMoved = new List<SiloAssignment>(moved);
        var traffic = new List<SiloTraffic>();
        int messages = children.Count;
        // The sum lands in this silo's own partial (a fresh buffer), or in the first child's when it computed none.
        byte[]? partial = own.Partial;
        try
        {
            foreach (var child in children)
            {
                var (answer, callMs) = await child;
                answers.AddRange(answer.Groups.Select(g => g.CallMs == 0 ? g with { CallMs = callMs } : g));
                allMoved.AddRange(answer.Moved);
                traffic.AddRange(answer.Traffic);
                messages += answer.Messages;
                if (reduced is not null) continue; // its partial is being added block by block
                var childPartial = answer.PartialTicket != Guid.Empty
                    ? await ReceiveTensor(answer.PartialTicket, cancellationToken)
                    : answer.Partial;
                if (childPartial is not null)
                {
                    var sum = wire == WireFormat.Bf16 ? Bf16.DecodeToFloatBytes(childPartial) : childPartial;
                    if (pooled && !ReferenceEquals(sum, childPartial)) buffers.Return(childPartial);
                    if (partial is null) partial = sum;
                    else
                    {
                        AddInto(partial, sum);
                        if (pooled) buffers.Return(sum);
                    }
                }
            }
        }
        catch (Exception e)
        {
            partialOut?.Fail(e);
            Observe(partialSent);
            Observe(reduced);
            // As above: the other children finish before the error leaves this silo.
            try { await Task.WhenAll(children); } catch (Exception) { }
            throw;
        }
        // Fails the pass (and the partial's send: ReduceUp fails what goes up) if a child's partial never came.
        if (reduced is not null)
        {
            try
            {
                await reduced;
            }
            catch
            {
                Observe(partialSent);
                throw;
            }
        }

        byte[]? partialBytes = partial is null || !encode || wire == WireFormat.F32 ? partial : Bf16.Encode(FloatBytes.AsFloats(partial));
        if (pooled && !ReferenceEquals(partialBytes, partial)) buffers.Return(partial);
        // X goes back once no send of it to a silo below is still running (one to a silo rescued past the hedge may be).
        if (pooled && sends.AllDone) buffers.Return(receivedInput);
        if (encode && wire == WireFormat.Bf16)
            answers = answers.Select(a => a.Output is { } z && a.Wire == WireFormat.F32 ? a with { Output = Bf16.Encode(FloatBytes.AsFloats(z)), Wire = WireFormat.Bf16 } : a).ToList();
        long sentBack = (partialBytes?.LongLength ?? 0) + answers.Sum(a => (a.Output?.LongLength ?? 0) + (a.Attention?.LongLength ?? 0));
        long inputBytes = request.Work?.Input.LongLength ?? request.Step!.Input.LongLength;
        traffic.Insert(0, new SiloTraffic
        {
            Silo = silo.Name,
            Groups = own.Groups.Length,
            BytesSent = localInput is null ? inputBytes : 0,
            BytesReceived = localInput is null ? sentBack : 0,
        });
        // A pass that computed a silo's groups here (past the hedge, or at once for a suspect) says how long a lost silo was
        // waited for, not how long this layer's passes take: counted, the passes of one hung spell raised the hedge time to
        // 4× a hedged pass, and the first passes after each suspicion waited 3–4 s (ChaosTests, CI).
        if (localInput is not null && request.Work is not null && !RescuedHere(request, answers))
            rescue.Passed(request.Layer, Stopwatch.GetElapsedTime(received));
        var partialTicket = Guid.Empty;
        if (partialSent is not null)
        {
            try
            {
                await partialSent;
                partialTicket = streamedTicket;
                if (pooled) buffers.Return(partialBytes);
                partialBytes = null;
            }
            catch (Exception e) when (ChannelFailed(e, cancellationToken))
            {
                // The parent's channel broke mid-frame: the partial rides in the answer.
            }
        }
        else if (partialBytes is { Length: >= TensorChannel.MinimumBytes } && request.ReplyChannel.Length > 0
            && IPEndPoint.TryParse(request.ReplyChannel, out var replyTo))
        {
            try
            {
                partialTicket = request.ReplyTicket != Guid.Empty ? request.ReplyTicket : Guid.NewGuid();
                await channel.Send(replyTo, partialTicket, partialBytes, cancellationToken,
                    request.ReplyMarker.Length > 0 ? request.ReplyMarker : null);
                if (pooled) buffers.Return(partialBytes);
                partialBytes = null;
            }
            catch (Exception e) when (ChannelFailed(e, cancellationToken))
            {
                partialTicket = Guid.Empty; // the requester's channel is unreachable: the partial rides in the answer
            }
        }
        return new SiloPassAnswer
        {
            Partial = partialBytes,
            PartialTicket = partialTicket,
            Groups = answers.ToArray(),
            Moved = allMoved.ToArray(),
            Traffic = traffic.ToArray(),
            ProjectionMs = own.ProjectionMs,
            Messages = messages,
        };
    }

    // A small decode step through the layer's batch on this silo; the step's span tells the batch it ran in.
    // Only the root (the session's own grain) computes an idle layer's step on its own thread; a relay serves every session.
    private async Task<Computed> Batched(SiloPassRequest request, List<(int Group, string Key, LocalHead Head)> local, long received,
        bool inline, CancellationToken cancellationToken)
    {
        var share = await batcher.Run(request, local, received, cancellationToken, inline);
        if (Activity.Current is { IsAllDataRequested: true } span)
        {
            span.SetTag(HeadwiseTelemetry.BatchSizeAttribute, share.BatchSize);
            span.SetTag(HeadwiseTelemetry.BatchQueueAttribute, Math.Round(share.WaitedSeconds * 1000, 3));
        }
        return new Computed(share.Partial, share.Groups, share.ProjectionMs);
    }

    // Groups of the silos below that were computed on this silo (rescued) rather than by their own silo.
    private bool RescuedHere(SiloPassRequest request, List<GroupAnswer> answers) =>
        answers.Any(a => a.Silo == silo.Name && Array.IndexOf(request.Groups, a.Group) < 0);

    // A forward pass does not wait on a silo below that failed or hangs: past the hedge time (or at once, for a silo
    // that failed) this silo computes that silo's groups itself, from storage, and the pass goes on. The late answer is
    // dropped. (A decode step cannot: its keys and values are in that silo's caches; see CallStepChild.)
    private async Task<(SiloPassAnswer Answer, double CallMs)> CallChild(SiloPassRequest request, SiloAssignment child, SiloAssignment[] below,
        byte[]? localInput, long received, Task<TimeSpan> ownDone, TensorProgress? input, SendsOfX sends, CancellationToken cancellationToken)
    {
        if (request.Versions.Length == 0) return await CallRelay(request, child, below, input, sends, cancellationToken);
        if (request.Step is not null) return await CallStepChild(request, child, below, ownDone, cancellationToken);
        long started = Stopwatch.GetTimestamp();
        if (!rescue.IsSuspect(child.Silo))
        {
            try
            {
                if (await AnswerBeforeHedge(request, child, below, ownDone, input, sends, cancellationToken) is { } answered) return answered;
            }
            catch (Exception e) when (HeadCallRetry.IsSiloFailure(e) || e is TimeoutException)
            {
                // Lost: rescued below.
            }
            rescue.Suspect(child.Silo);
        }
        if (input is not null) await Arrived(input, input.Length, cancellationToken); // the rescue computes from the whole of X
        var answer = await Rescue(request, below.Prepend(child).SelectMany(a => a.Groups).ToArray(), localInput, received, cancellationToken);
        return (answer, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    // The child's answer, or null once the hedge time has passed first (the late answer is then dropped).
    private async Task<(SiloPassAnswer Answer, double CallMs)?> AnswerBeforeHedge(SiloPassRequest request, SiloAssignment child,
        SiloAssignment[] below, Task<TimeSpan> ownDone, TensorProgress? input, SendsOfX sends, CancellationToken cancellationToken)
    {
        var call = CallRelay(request, child, below, input, sends, cancellationToken);
        using var stopHedge = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var hedge = Hedge(rescue.HedgeAfter(request.Layer), ownDone, stopHedge.Token);
        if (await Task.WhenAny(call, hedge) == call)
        {
            stopHedge.Cancel();
            return await call;
        }
        cancellationToken.ThrowIfCancellationRequested();
        _ = call.ContinueWith(t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);
        return null;
    }

    // A decode step cannot compute a lost or hung silo's groups from weights alone (their keys and values are in that
    // silo's caches), so past the same hedge time it answers them as having no cache: the session's coordinator re-fills
    // them from its stored inputs on its own silo (DecodeStepper), and later steps find them there. The silo is suspected,
    // so the steps of the next seconds do not wait for it again.
    private async Task<(SiloPassAnswer Answer, double CallMs)> CallStepChild(SiloPassRequest request, SiloAssignment child, SiloAssignment[] below,
        Task<TimeSpan> ownDone, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        if (!rescue.IsSuspect(child.Silo))
        {
            // CallRelay answers a failed silo's groups as cache-less; the silo is suspected like a hung one.
            if (await AnswerBeforeHedge(request, child, below, ownDone, null, new SendsOfX(), cancellationToken) is { } answered
                && (answered.Answer.Groups.Length == 0 || answered.Answer.Groups.Any(g => !g.NoCache || g.Silo.Length > 0)))
                return answered;
            rescue.Suspect(child.Silo);
        }
        return (new SiloPassAnswer { Groups = Lost(child, below) }, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private static GroupAnswer[] Lost(SiloAssignment child, SiloAssignment[] below) =>
        below.Prepend(child).SelectMany(a => a.Groups)
            .Select(g => new GroupAnswer { Group = g, Version = Guid.Empty, Silo = "", Kernel = "", NoCache = true }).ToArray();

    // Fires once the hedge time has passed and this silo has finished its own heads and waited as long again.
    private static async Task Hedge(TimeSpan after, Task<TimeSpan> ownDone, CancellationToken cancellationToken)
    {
        await Task.Delay(after, cancellationToken);
        var own = await ownDone.WaitAsync(cancellationToken);
        await Task.Delay(own, cancellationToken);
    }

    private async Task<SiloPassAnswer> Rescue(SiloPassRequest request, int[] groups, byte[]? localInput, long received, CancellationToken cancellationToken)
    {
        var heads = await Task.WhenAll(groups.Order().Select(async g =>
        {
            string key = $"{request.Layer}/{g}";
            return (g, key, await rescue.Load(key, request.Versions[g]));
        }));
        var computed = await compute.Run(() => Compute(request, localInput, heads.ToList(), received, cancellationToken), cancellationToken);
        var partial = computed.Partial;
        // Children's partial sums arrive in the pass's wire format; this one joins them the same way.
        if (partial is not null && request.Work?.Wire == WireFormat.Bf16) partial = Bf16.Encode(FloatBytes.AsFloats(partial));
        return new SiloPassAnswer
        {
            Partial = partial,
            Groups = computed.Groups,
            Moved = [],
            Traffic = [],
            ProjectionMs = computed.ProjectionMs,
            Messages = 0,
        };
    }

    private async Task<(SiloPassAnswer Answer, double CallMs)> CallRelay(SiloPassRequest request, SiloAssignment child, SiloAssignment[] below,
        TensorProgress? input, SendsOfX sends, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        try
        {
            var childRequest = await ByChannel(request with { Groups = child.Groups, Subtree = below }, child.Silo, input, sends, cancellationToken);
            var answer = await grains.GetGrain<ISiloRelayGrain>(GrainKeys.Relay(child.Silo)).Forward(childRequest, cancellationToken);
            return (answer, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception e) when (request.Step is not null && (HeadCallRetry.IsSiloFailure(e) || e is TimeoutException))
        {
            // A decode step outlives a lost silo: its heads have no cache wherever they activate next, so the session
            // re-fills them from its inputs. (A forward pass is re-run whole by its coordinator instead.)
            return (new SiloPassAnswer { Groups = Lost(child, below) }, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
    }

    // A large X goes to the child on its tensor channel, the message naming its ticket as soon as the frame has begun: the
    // child starts on the first rows while the rest streams (as it arrives here, at a relay). Where the child's channel is
    // unknown (an older silo, metadata not arrived) or unreachable, X rides in the message as before, once all of it is here.
    private async Task<SiloPassRequest> ByChannel(SiloPassRequest request, string child, TensorProgress? input, SendsOfX sends,
        CancellationToken cancellationToken)
    {
        request = request with { ReplyChannel = $"{OwnAddress()}:{channel.Port}", ReplyMarker = channel.SharedMemoryMarker ?? "" };
        if (request.Work is not { Input.Length: > 0 } work) return request;
        if (work.Input.Length >= TensorChannel.MinimumBytes && ChannelOf(child) is var (peer, marker))
        {
            var ticket = Guid.NewGuid();
            try
            {
                sends.Add(await channel.Start(peer, ticket, input ?? TensorProgress.Complete(work.Input), cancellationToken, marker));
                return request with { Work = work with { Input = [] }, InputTicket = ticket };
            }
            catch (Exception e) when (ChannelFailed(e, cancellationToken))
            {
            }
        }
        if (input is not null) await Arrived(input, input.Length, cancellationToken);
        return request;
    }

    // The partial sum of a leaf computed in pieces, on its way to the parent's channel as its blocks are done; null when
    // the parent has no channel this silo can reach (the partial then rides in the answer, or goes whole as before).
    private async Task<(TensorProgress? Partial, Guid Ticket, Task? Sent)> StreamPartial(SiloPassRequest request, CancellationToken cancellationToken)
    {
        var work = request.Work!;
        int modelDim = StackedModelDim(request);
        long length = (long)work.Batch * work.Tokens * modelDim * sizeof(float);
        // Through shared memory a frame begins only once its payload is whole: nothing to stream there.
        if (modelDim == 0 || length < TensorChannel.MinimumBytes || request.ReplyMarker.Length > 0 && channel.Shares(request.ReplyMarker)
            || !IPEndPoint.TryParse(request.ReplyChannel, out var replyTo))
            return (null, Guid.Empty, null);
        var partial = new TensorProgress(buffers.Rent(checked((int)length)));
        var ticket = request.ReplyTicket != Guid.Empty ? request.ReplyTicket : Guid.NewGuid();
        try
        {
            return (partial, ticket, await channel.Start(replyTo, ticket, partial, cancellationToken));
        }
        catch (Exception e) when (ChannelFailed(e, cancellationToken))
        {
            buffers.Return(partial.Buffer);
            return (null, Guid.Empty, null);
        }
    }

    private int StackedModelDim(SiloPassRequest request)
    {
        foreach (int group in request.Groups)
            if (TryGetLocal(request, group, $"{request.Layer}/{group}", out var head)) return head.Spec.ModelDim;
        return 0;
    }

    /// <summary>The sends of X to the silos below that one pass started; its X is reused only once they are all done.</summary>
    private sealed class SendsOfX
    {
        private readonly List<Task> _sends = [];

        public void Add(Task send)
        {
            // A send that fails later fails its child's pass, which is where the error is reported.
            _ = send.ContinueWith(static t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);
            lock (_sends) _sends.Add(send);
        }

        public bool AllDone
        {
            get
            {
                lock (_sends) return _sends.TrueForAll(t => t.IsCompleted);
            }
        }
    }

    // A frame that never came (its connection broke after it was written) makes the pass UNAVAILABLE, which the
    // coordinator's retry handles like a lost silo, rather than an error of its own.
    private async Task<byte[]> ReceiveTensor(Guid ticket, CancellationToken cancellationToken)
    {
        var arriving = await ClaimTensor(ticket, cancellationToken);
        await Arrived(arriving, arriving.Length, cancellationToken);
        return arriving.Buffer;
    }

    // Bytes [0, bytes) of a tensor arriving on the channel; a frame whose connection broke fails the pass UNAVAILABLE.
    private async Task Arrived(TensorProgress tensor, int bytes, CancellationToken cancellationToken)
    {
        try
        {
            await tensor.WaitFor(bytes, cancellationToken);
        }
        catch (IOException e)
        {
            throw new HeadwiseException(ErrorCode.Unavailable, $"a tensor sent to silo {silo.Name} stopped arriving ({e.Message}); retry.");
        }
    }

    // The tensor's frame, once it has begun to arrive; failures as in ReceiveTensor.
    private async Task<TensorProgress> ClaimTensor(Guid ticket, CancellationToken cancellationToken)
    {
        try
        {
            return await channel.Claim(ticket, ChannelWait, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new HeadwiseException(ErrorCode.Unavailable, $"a tensor sent to silo {silo.Name} did not arrive within {ChannelWait.TotalSeconds:F0} s; retry.");
        }
        catch (IOException e)
        {
            throw new HeadwiseException(ErrorCode.Unavailable, $"a tensor sent to silo {silo.Name} through shared memory could not be read ({e.Message}); retry.");
        }
    }

    // A send that failed or timed out (not the caller giving up): the tensor goes inside the message instead.
    // A task this pass no longer awaits, failing with the pass: its exception is the pass's, already reported.
    private static void Observe(Task? task) => task?.ContinueWith(static t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);

    private static bool ChannelFailed(Exception e, CancellationToken cancellationToken) =>
        e is SocketException or IOException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested);

    private string OwnAddress() => silo.Name[..silo.Name.LastIndexOf(':')];

    // The silo's tensor channel, and its shared-memory marker when it advertises one.
    private (IPEndPoint Peer, string? Marker)? ChannelOf(string siloEndpoint)
    {
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            // A silo restarted on the same endpoint leaves its dead entry beside the live one.
            if (member.Status != SiloStatus.Active || member.SiloAddress.Endpoint.ToString() != siloEndpoint) continue;
            var advertised = metadata.GetSiloMetadata(member.SiloAddress).Metadata;
            if (!advertised.TryGetValue(TensorChannelKey, out var text)
                || !int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int port))
                return null;
            return (new IPEndPoint(member.SiloAddress.Endpoint.Address, port), advertised.GetValueOrDefault(TensorMarkerKey));
        }
        return null;
    }

    /// <summary>The silo metadata key of a silo's tensor channel port.</summary>
    public const string TensorChannelKey = "headwise.tensor-port";

    /// <summary>The silo metadata key of its tensor channel's shared-memory marker (<see cref="TensorChannel.SharedMemoryMarker"/>).</summary>
    public const string TensorMarkerKey = "headwise.tensor-shm";

    // The groups active here; any other is activated (or found) wherever placement puts it, and reported as moved.
    private async Task<(List<(int Group, string Key, LocalHead Head)> Local, List<SiloAssignment> Moved)> Resolve(SiloPassRequest request)
    {
        var local = new List<(int, string, LocalHead)>(request.Groups.Length);
        var elsewhere = new List<(int Group, string Key)>();
        foreach (int group in request.Groups)
        {
            string key = $"{request.Layer}/{group}";
            if (TryGetLocal(request, group, key, out var head)) local.Add((group, key, head));
            // A decode step's group re-filled here when its own silo was lost or hung: its cache is here now.
            else if (request.Step is not null && group < request.Versions.Length && rescue.TryGetLoaded(key, request.Versions[group], out head))
                local.Add((group, key, head));
            else elsewhere.Add((group, key));
        }
        var moved = new List<SiloAssignment>();
        if (elsewhere.Count > 0)
        {
            var placements = await Task.WhenAll(elsewhere.Select(h => grains.GetGrain<IHeadGrain>(h.Key).Describe()));
            for (int i = 0; i < elsewhere.Count; i++)
            {
                var (group, key) = elsewhere[i];
                if (placements[i].Silo == silo.Name && TryGetLocal(request, group, key, out var head)) local.Add((group, key, head));
                else moved.Add(new SiloAssignment(placements[i].Silo, [group]));
            }
            local.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        }
        // Before any head computes or appends to a cache: one head serving other weights than the caller's fails the
        // pass untouched (a forward's coordinator then plans again; a decode session cannot, its caches are the old ones).
        if (request.Versions.Length > 0)
            foreach (var (group, _, head) in local)
                if (group >= request.Versions.Length || request.Versions[group] != head.Version)
                    throw request.Step is null
                        ? new HeadwiseException(ErrorCode.FailedPrecondition,
                            $"head group {group} of layer '{request.Layer}' serves other weights than the pass was planned with.")
                        : new HeadwiseException(ErrorCode.FailedPrecondition,
                        $"the weights of model '{HeadwiseTelemetry.SplitKey(request.Layer).Prefix}' layer {HeadwiseTelemetry.SplitKey(request.Layer).Index} were uploaded again after session '{request.Step?.Session}' opened " +
                        $"(head group {group} changed): its W_O and cached keys and values belong to the old weights. Close it and open a new session.");
        return (local, moved);
    }

    // The weights the pass was planned with, while the head still holds them (a switch keeps the previous version until
    // its layer has switched too); else the ones it serves, which the version check below turns down.
    private bool TryGetLocal(SiloPassRequest request, int group, string key, out LocalHead head) =>
        group < request.Versions.Length
            ? localHeads.TryGet(key, request.Versions[group], out head)
            : localHeads.TryGet(key, out head);

    private static void AddInto(byte[] sum, byte[] addend) =>
        System.Numerics.Tensors.TensorPrimitives.Add(FloatBytes.AsFloats(sum.AsSpan()), FloatBytes.AsFloats(addend), FloatBytes.AsFloats(sum.AsSpan()));
}
