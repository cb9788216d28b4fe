using Headwise.Contracts;

namespace Headwise.Grains.Decode;

/// <summary>
/// A session's K/V caches on the silos of its heads, seen from its coordinator: their leases renewed while the session is
/// open but idle, and dropped on every silo when it ends.
/// </summary>
internal static class SessionCacheLeases
{
    /// <summary>Renews the session's caches on each silo its heads last answered from (fire and forget: a lease lasts three timer periods).</summary>
    public static void Renew(IGrainFactory grains, DecodeSessionState session, string sessionId)
    {
        foreach (var headSilo in session.HeadSilos.Where(s => s.Length > 0).Distinct())
            _ = grains.GetGrain<ISiloRelayGrain>(GrainKeys.Relay(headSilo)).RenewSessionCaches(sessionId);
    }

    /// <summary>
    /// Every active silo, not only those of the layer's heads now: a head that moved or was re-filled elsewhere left a
    /// cache behind on its old silo.
    /// </summary>
    public static async Task DropEverywhere(IGrainFactory grains, string sessionId)
    {
        var hosts = await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        await Task.WhenAll(hosts.Keys.Select(async address =>
        {
            try
            {
                await grains.GetGrain<ISiloRelayGrain>(GrainKeys.Relay(address.Endpoint.ToString())).DropSessionCaches(sessionId)
                    .WaitAsync(TimeSpan.FromSeconds(5));
            }
            catch (Exception)
            {
                // A silo that is leaving takes its caches with it; one that hangs drops them when they are idle.
            }
        }));
    }
}
