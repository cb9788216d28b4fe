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
                    if (sources[i] is { } source) limit = Math.Min(limit, source.Available);
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

    // A child's partial sum under the reply ticket its parent chose, once its frame begins (cancelled once not wanted).
    private Task<TensorProgress> ClaimReply(Guid ticket, CancellationToken cancellationToken) => channel.Claim(ticket, ChannelWait, cancellationToken);

    /// <summary>
    /// A child's partial sum as the parent adds it: the frame under the reply ticket as it arrives, until the child's answer
    /// says otherwise (rescued past the hedge, or the channel failed: the partial then comes with the answer). Rows already
    /// added from the frame are the same groups' partial sums as the answer's, so switching source between rows is exact.
    /// </summary>
    private sealed class ChildPartial : IDisposable
    {
        private readonly SiloPass _pass;
        private readonly Task<(SiloPassAnswer Answer, double CallMs)> _call;
        private readonly Guid _ticket;
        private readonly CancellationTokenSource _stop;
        private readonly Task<TensorProgress> _claim;
        private Task<TensorProgress?>? _final;

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
                    var arriving = _claim.Result;
                    var ready = arriving.WaitFor(bytes, cancellationToken);
                    if (await Task.WhenAny(ready, _call) == ready)
                    {
                        if (ready.IsCompletedSuccessfully) return arriving;
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
            if (answer.PartialTicket == _ticket) return await _claim.WaitAsync(cancellationToken);
            _stop.Cancel();
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
