using System.Numerics.Tensors;
using Headwise.Contracts;
using Headwise.Grains.Forward;
using Headwise.Kernels;

namespace Headwise.Grains.Decode;

/// <summary>What one decode step produced: Y for the new rows and where its heads were computed.</summary>
internal sealed record StepOutcome(byte[] Output, int Refilled, int LocalGroups, int RemoteMessages);

/// <summary>
/// One decode step of a session, on the forward pass's path (<see cref="LayerFanOut"/>): the new rows go once to every
/// silo of the layer's heads (this silo's computed in-process), each head appends them to its K/V cache and attends, and
/// each silo answers with one partial sum of its heads' W_O rows. A head without a cache at the step's position (evicted,
/// or its silo was lost) is re-filled from the session's inputs and its Z projected here with the session's W_O rows.
/// </summary>
public sealed class DecodeStepper(IGrainFactory grains, LayerFanOut fanOut, IHeadKernel kernel, SiloIdentity silo, HeadRescue rescue,
    SessionCaches caches)
{
    internal async Task<StepOutcome> Run(string sessionId, DecodeSessionState session, DecodeCommand command)
    {
        var spec = session.Spec;
        int groupCount = spec.GroupCount;
        if (session.HeadSilos.Length != groupCount) session.HeadSilos = Enumerable.Repeat("", groupCount).ToArray();
        string layerKey = GrainKeys.Layer(session.Model, session.Layer);
        var work = new HeadDecodeWork
        {
            Session = sessionId,
            Batch = command.Batch,
            Tokens = command.Tokens,
            Position = session.Position,
            Input = command.Input,
            Restart = session.Position == 0,
            MaxTokens = session.MaxTokens,
            NewSession = session.Position == 0,
        };
        var request = new SiloPassRequest
        {
            Layer = layerKey,
            Step = work,
            Groups = [],
            Mode = OutputProjectionMode.PartialSums,
            Versions = session.Projection.HeadVersions,
        };
        var answers = await fanOut.Run(session.HeadSilos, request, command.Input, moved =>
        {
            foreach (var assignment in moved)
                foreach (int group in assignment.Groups)
                    session.HeadSilos[group] = assignment.Silo;
        }, CancellationToken.None);

        var refill = new List<int>();
        // Groups whose silo failed or hung (answered with no silo): re-filled here, not through their head grain.
        var lost = new HashSet<int>();
        int local = 0;
        foreach (var group in answers.SelectMany(a => a.Groups))
        {
            if (group.Silo.Length > 0) session.HeadSilos[group.Group] = group.Silo;
            if (group.Silo == silo.Name) local++;
            if (group.NoCache) refill.Add(group.Group);
            if (group.NoCache && group.Silo.Length == 0) lost.Add(group.Group);
            else RequireSameWeights(sessionId, session, group.Group, group.Version);
        }

        int rows = command.Batch * command.Tokens;
        var output = PartialSums.Add(answers, rows, spec.ModelDim, session.Projection.OutputBias);
        if (refill.Count > 0)
        {
            var refillWork = SessionHistory.RefillWork(session, command, work);
            var refilled = await Task.WhenAll(refill.Select(g => lost.Contains(g)
                ? RefillHere(sessionId, session, command, g, refillWork)
                : Refill(sessionId, session, command, g, refillWork)));
            var y = FloatBytes.AsFloats(output.AsSpan());
            var share = new float[rows * spec.ModelDim];
            int groupWidth = spec.GroupSize * spec.HeadDim;
            for (int i = 0; i < refill.Count; i++)
            {
                // Z_g · W_O[g rows]: this group's share of the output projection, computed here.
                kernel.Project(refilled[i], rows, groupWidth,
                    session.Projection.OutputWeights.AsSpan(refill[i] * groupWidth * spec.ModelDim, groupWidth * spec.ModelDim),
                    spec.ModelDim, ReadOnlySpan<float>.Empty, share);
                TensorPrimitives.Add(y, share, y);
            }
        }
        return new StepOutcome(output, refill.Count, local, answers.Sum(a => a.Messages));
    }

    private async Task<float[]> Refill(string sessionId, DecodeSessionState session, DecodeCommand command, int group, HeadDecodeWork refillWork)
    {
        var head = grains.GetGrain<IHeadGrain>(GrainKeys.Head(session.Model, session.Layer, group));
        // The dead silo may still be in the directory for a moment: retry with backoff like a forward pass does.
        return Refilled(sessionId, session, command, group, await HeadCallRetry.RunAsync(() => head.Decode(refillWork), () => { }));
    }

    // The group's silo is lost or hung: asking its head grain would wait for membership to declare the silo dead (or for
    // Orleans' response timeout). The weights come from storage (HeadRescue), the cache is built on this silo, and the
    // session's later steps compute the group here (SiloPass finds the rescued weights).
    private async Task<float[]> RefillHere(string sessionId, DecodeSessionState session, DecodeCommand command, int group, HeadDecodeWork refillWork)
    {
        string key = GrainKeys.Head(session.Model, session.Layer, group);
        var head = await rescue.Load(key, session.Projection.HeadVersions[group]);
        return Refilled(sessionId, session, command, group,
            await Task.Run(() => HeadDecoder.Decode(key, refillWork, head.Spec, head.Weights, head.Version, kernel, silo.Name, caches)));
    }

    // The re-filled group's new rows; the session finds the group where it was re-filled from now on.
    private static float[] Refilled(string sessionId, DecodeSessionState session, DecodeCommand command, int group, HeadDecodeOutcome outcome)
    {
        RequireSameWeights(sessionId, session, group, outcome.WeightsVersion);
        session.HeadSilos[group] = outcome.Silo;
        return SessionHistory.NewRows(session, command, outcome.Output
            ?? throw new HeadwiseException(ErrorCode.Internal, $"head group {group} of session '{sessionId}' refused a re-fill."));
    }

    // W_O and every cached K and V of the session come from the weights it opened with: a head answering from other
    // weights (an upload since) would mix the two in one answer.
    private static void RequireSameWeights(string sessionId, DecodeSessionState session, int group, Guid version)
    {
        var versions = session.Projection.HeadVersions;
        if (group < versions.Length && versions[group] != version)
            throw new HeadwiseException(ErrorCode.FailedPrecondition,
                $"the weights of model '{session.Model}' layer {session.Layer} were uploaded again after session '{sessionId}' opened " +
                $"(head group {group} changed): its W_O and cached keys and values belong to the old weights. Close it and open a new session.");
    }
}
