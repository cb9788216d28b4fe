using Headwise.Contracts;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Forward;

/// <summary>
/// The fan-out of a forward pass or a decode step over a layer's silos, with this silo as the root of the broadcast tree
/// (<see cref="SiloPass"/>): one message per remote silo (per child of the tree), its own heads computed in-process.
/// Heads found active elsewhere than the caller believed are sent again where they are, in a further round, so a head
/// that moved (re-balancing, a lost silo) costs a round trip, not the pass.
/// </summary>
public sealed class LayerFanOut(SiloPass pass, SiloIdentity silo, IOptions<ScatterOptions> scatter)
{
    private const int MaxRounds = 4;

    /// <param name="headSilos">Per group, the silo it was last seen on ("" when not known: tried here first).</param>
    /// <param name="request">What every silo receives; its groups and subtree are set here.</param>
    /// <param name="localInput">The float32 X for this silo's own heads.</param>
    /// <param name="moved">Told of every group that answered from another silo than <paramref name="headSilos"/> said.</param>
    public async Task<IReadOnlyList<SiloPassAnswer>> Run(string[] headSilos, SiloPassRequest request, byte[] localInput,
        Action<IReadOnlyList<SiloAssignment>> moved, CancellationToken cancellationToken)
    {
        var answers = new List<SiloPassAnswer>();
        var pending = Assign(headSilos.Select((s, g) => (g, s.Length == 0 ? silo.Name : s)));
        for (int round = 0; pending.Count > 0; round++)
        {
            if (round == MaxRounds)
                throw new HeadwiseException(ErrorCode.Unavailable, $"the heads of layer '{request.Layer}' kept moving during the pass; retry.");
            var subtree = pending.Where(a => a.Silo != silo.Name).ToArray();
            int fanout = ScatterTree.FanoutFor(scatter.Value.TreeFanout, subtree.Length, localInput.LongLength);
            var answer = await pass.Run(request with
            {
                Groups = pending.FirstOrDefault(a => a.Silo == silo.Name)?.Groups ?? [],
                Subtree = subtree,
                Fanout = fanout,
                PieceRows = ScatterTree.PieceRowsFor(scatter.Value.PieceRows, ScatterTree.Depth(subtree.Length, fanout)),
            }, localInput, encode: false, cancellationToken);
            answers.Add(answer);
            if (answer.Moved.Length == 0) break;
            moved(answer.Moved);
            pending = Assign(answer.Moved.SelectMany(m => m.Groups.Select(g => (g, m.Silo))));
        }
        return answers;
    }

    /// <summary>The silos of a pass, ordered by endpoint, each with its groups.</summary>
    public static List<SiloAssignment> Assign(IEnumerable<(int Group, string Silo)> groups) =>
        groups.GroupBy(g => g.Silo)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new SiloAssignment(g.Key, g.Select(x => x.Group).Order().ToArray()))
            .ToList();
}
