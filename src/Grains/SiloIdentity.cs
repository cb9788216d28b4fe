using Orleans.Runtime;

namespace Headwise.Grains;

/// <summary>How a silo names itself in reports, placements and spans: its endpoint, e.g. "127.0.0.1:11111".</summary>
public sealed class SiloIdentity(ILocalSiloDetails details)
{
    public string Name { get; } = details.SiloAddress.Endpoint.ToString();
}
