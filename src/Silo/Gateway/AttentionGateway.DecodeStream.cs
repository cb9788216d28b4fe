using Grpc.Core;
using Headwise.Contracts;
using Headwise.V1;

namespace Headwise.Silo.Gateway;

/// <summary>
/// DecodeStream: the steps of one session over one bidirectional stream, each run by <c>Step</c> exactly as a unary
/// Decode runs it (same checks, same KnownSessions lookup, same decode slot while it runs), answered in order. The
/// stream saves a step the HTTP/2 request (headers, a stream, the interceptors), nothing else; the first failing step
/// ends the stream with its status and leaves the session as a failed unary Decode would. A stopping silo ends its
/// streams between steps (<see cref="DecodeStreamDrain"/>) with UNAVAILABLE.
/// </summary>
internal sealed partial class AttentionGateway
{
    // Written, never mutated: every ping is answered with the same message (no allocation for the floor's probe).
    private static readonly DecodeStreamResponse PingAnswer = new() { Ping = true };

    public override async Task DecodeStream(IAsyncStreamReader<DecodeStreamRequest> requestStream,
        IServerStreamWriter<DecodeStreamResponse> responseStream, ServerCallContext context)
    {
        var cancellation = context.CancellationToken;
        // Only the wait for the next message ends with the drain; a step under way runs to its answer.
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellation, streamDrain.Ending);
        string? id = null, session = null;
        int? position = null;
        while (await NextMessage(requestStream, waiting.Token, position))
        {
            var request = requestStream.Current;
            if (session is null)
            {
                if (request.Session.Length == 0)
                    throw new HeadwiseException(ErrorCode.InvalidArgument, "session is missing: the first message of DecodeStream names the session (the id OpenSession returned).");
                session = SessionIds.GrainKey(request.Session);
                await sessions.Require(session);
                id = request.Session;
            }
            else if (request.Session.Length != 0 && request.Session != id)
            {
                // Neither id is echoed: both are bearer tokens.
                throw new HeadwiseException(ErrorCode.InvalidArgument, "session differs from the one the stream's first message named; a DecodeStream serves one session.");
            }

            if (request.Ping)
            {
                await responseStream.WriteAsync(PingAnswer, cancellation);
                continue;
            }

            DecodeCommand command;
            DecodeResult result;
            using (gate.EnterDecodeStep(context.Method))
                (command, result) = await Step(session, request.Input, request.HasExpectedPosition ? request.ExpectedPosition : null, cancellation);
            await responseStream.WriteAsync(new DecodeStreamResponse
            {
                Output = TensorCodec.FromFloat32Bytes(result.Output, command.Batch, command.Tokens, result.ModelDim),
                Position = result.Position,
                ReprefilledGroups = result.ReprefilledGroups,
                Replayed = result.Replayed,
                TraceId = result.TraceId,
            }, cancellation);
            position = result.Position;
        }
    }

    private async Task<bool> NextMessage(IAsyncStreamReader<DecodeStreamRequest> requestStream, CancellationToken waiting, int? position)
    {
        try
        {
            if (!streamDrain.Ending.IsCancellationRequested) return await requestStream.MoveNext(waiting);
        }
        catch (OperationCanceledException) when (streamDrain.Ending.IsCancellationRequested)
        {
            // The silo stopped serving while this stream waited for its next step.
        }
        throw new HeadwiseException(ErrorCode.Unavailable, position is int at
            ? $"the silo is shutting down: this stream has ended after its last answered step (the session is at position {at}); reopen DecodeStream through another gateway and go on from there."
            : "the silo is shutting down: this stream has ended before any step; reopen DecodeStream through another gateway.");
    }
}
