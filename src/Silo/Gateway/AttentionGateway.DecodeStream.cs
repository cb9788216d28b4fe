using Grpc.Core;
using Headwise.Contracts;
using Headwise.V1;

namespace Headwise.Silo.Gateway;

/// <summary>
/// DecodeStream: the steps of one session over one bidirectional stream, each run by <c>Step</c> exactly as a unary
/// Decode runs it (same checks, same KnownSessions lookup, same decode slot while it runs), answered in order. The
/// stream saves a step the HTTP/2 request (headers, a stream, the interceptors), nothing else; the first failing step
/// ends the stream with its status and leaves the session as a failed unary Decode would.
/// </summary>
internal sealed partial class AttentionGateway
{
    // Written, never mutated: every ping is answered with the same message (no allocation for the floor's probe).
    private static readonly DecodeStreamResponse PingAnswer = new() { Ping = true };

    public override async Task DecodeStream(IAsyncStreamReader<DecodeStreamRequest> requestStream,
        IServerStreamWriter<DecodeStreamResponse> responseStream, ServerCallContext context)
    {
        var cancellation = context.CancellationToken;
        string? id = null, session = null;
        while (await requestStream.MoveNext(cancellation))
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
        }
    }
}
