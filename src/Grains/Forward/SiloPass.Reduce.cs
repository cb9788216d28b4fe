using System.Numerics.Tensors;
using Headwise.Contracts;

namespace Headwise.Grains.Forward;

// A relay computing in pieces sends its partial sum up block by block too: each block goes once its own rows and every
// child's are in, their sum taken in the order of the whole-tensor path (own, then each child in tree order).
public sealed partial class SiloPass
{
    /// <param name="rowBytes">One row of the partial sum (D floats): the reduction adds whole rows.</param>
    private async Task ReduceUp(TensorProgress own, List<ChildPartial> children, TensorProgress up, int rowBytes, CancellationToken cancellationToken)
    {
        try
        {
            int done = 0;
            while (done < up.Length)
            {
                int next = done + rowBytes;
                await own.WaitFor(next, cancellationToken);
                int limit = own.Available;
                var sources = new TensorProgress?[children.Count];
                for (int i = 0; i < children.Count; i++)
                {
                    sources[i] = await children[i].SourceFor(next, cancellationToken);
                    if (sources[i] is not { } source) continue;
                    if (source.Length != up.Length)
                        throw new HeadwiseException(ErrorCode.Internal, $"a partial sum below holds {source.Length} bytes; this pass's hold {up.Length}.");
                    limit = Math.Min(limit, source.Available);
                }
                limit = limit / rowBytes * rowBytes;
                var sum = FloatBytes.AsFloats(up.Buffer.AsSpan(done, limit - done));
                foreach (var source in sources)
                    if (source is not null) TensorPrimitives.Add(sum, FloatBytes.AsFloats(source.Buffer.AsSpan(done, limit - done)), sum);
                up.Advance(limit);
                done = limit;
            }
        }
        catch (Exception e)
        {
            up.Fail(e);
            throw;
        }
        finally
        {
            foreach (var child in children) child.Dispose();
        }
    }

    private string SiloName => silo.Name;

    // A child's partial sum under the reply ticket its parent chose, once its frame begins: no deadline of its own, since a
    // child that sends it whole does so only when done, however long that takes (the child's answer bounds the wait).
    private Task<TensorProgress> ClaimReply(Guid ticket, CancellationToken cancellationToken) =>
        channel.Claim(ticket, Timeout.InfiniteTimeSpan, cancellationToken);

    /// <summary>
    /// A child's partial sum as the parent adds it: the frame under the reply ticket as it arrives, until the child's answer
    /// says otherwise (rescued past the hedge, or the channel failed: the partial then comes with the answer). A rescue
    /// computes every group of the subtree while the frame may leave out groups that had moved (a second round adds
    /// those), so once rows of the frame were added, an answer from elsewhere fails the pass UNAVAILABLE for a retry.
    /// </summary>
    private sealed class ChildPartial : IDisposable
    {
        private readonly SiloPass _pass;
        private readonly Task<(SiloPassAnswer Answer, double CallMs)> _call;
        private readonly Guid _ticket;
        private readonly CancellationTokenSource _stop;
        private readonly Task<TensorProgress> _claim;
        private Task<TensorProgress?>? _final;
        private bool _used;

        public ChildPartial(SiloPass pass, Task<(SiloPassAnswer Answer, double CallMs)> call, Guid ticket, CancellationToken cancellationToken)
        {
            _pass = pass;
            _call = call;
            _ticket = ticket;
            _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            _claim = pass.ClaimReply(ticket, _stop.Token);
            _ = _claim.ContinueWith(static t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);
        }

        /// <summary>The source with at least <paramref name="bytes"/> in, or null when the child sends no partial.</summary>
        public async Task<TensorProgress?> SourceFor(int bytes, CancellationToken cancellationToken)
        {
            while (!_call.IsCompleted)
            {
                if (_claim.IsCompletedSuccessfully)
                {
                    var arriving = await _claim;
                    var ready = arriving.WaitFor(bytes, cancellationToken);
                    _ = ready.ContinueWith(static t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);
                    if (await Task.WhenAny(ready, _call) == ready)
                    {
                        if (ready.IsCompletedSuccessfully)
                        {
                            _used = true;
                            return arriving;
                        }
                        cancellationToken.ThrowIfCancellationRequested();
                        // The frame broke (its silo lost?): the answer decides, a rescue's partial or the call's failure.
                        await Task.WhenAny(_call);
                    }
                }
                else if (await Task.WhenAny(_claim, _call) == _claim && !_claim.IsCompletedSuccessfully)
                    await _call.WaitAsync(cancellationToken); // no frame came: the answer decides
            }
            var source = await (_final ??= Final(cancellationToken));
            if (source is not null) await _pass.Arrived(source, bytes, cancellationToken);
            return source;
        }

        private async Task<TensorProgress?> Final(CancellationToken cancellationToken)
        {
            var (answer, _) = await _call;
            if (answer.PartialTicket == _ticket)
            {
                try
                {
                    // The child sent the frame before it answered: its header is here or on its way.
                    return await _claim.WaitAsync(ChannelWait, cancellationToken);
                }
                catch (TimeoutException)
                {
                    throw new HeadwiseException(ErrorCode.Unavailable, $"a partial sum sent to silo {_pass.SiloName} did not arrive within {ChannelWait.TotalSeconds:F0} s; retry.");
                }
            }
            _stop.Cancel();
            if (_used)
                throw new HeadwiseException(ErrorCode.Unavailable,
                    "a silo below was replaced by a rescue after part of its partial sum had been added; retry.");
            if (answer.PartialTicket != Guid.Empty)
                return TensorProgress.Complete(await _pass.ReceiveTensor(answer.PartialTicket, cancellationToken));
            return answer.Partial is { } partial ? TensorProgress.Complete(partial) : null;
        }

        public void Dispose()
        {
            _stop.Cancel();
            _stop.Dispose();
        }
    }
}
