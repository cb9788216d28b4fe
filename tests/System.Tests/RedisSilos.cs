using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>The environment of a silo process in a Redis cluster, as the fault tests start them.</summary>
internal static class RedisSilos
{
    /// <summary>Redis clustering and storage, no demo model, equal speeds (placement spreads heads evenly), and no
    /// idle re-balancing (the tests move heads when they mean to).</summary>
    public static Dictionary<string, string> Environment(RedisServer redis) => new()
    {
        ["Headwise__Clustering"] = "Redis",
        ["Headwise__Storage"] = "Redis",
        ["Headwise__Redis"] = redis.ConnectionString,
        ["Headwise__DemoModel"] = "false",
        ["Headwise__Speed"] = "100",
        ["Headwise__RebalanceIdleSeconds"] = "0",
    };
}
