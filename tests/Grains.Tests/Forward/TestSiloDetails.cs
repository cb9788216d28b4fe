using System.Net;
using Orleans.Runtime;

namespace Headwise.Grains.Tests.Forward;

/// <summary>A silo's identity for the batchers' tests, which run without a silo: 127.0.0.1:11111.</summary>
internal sealed class TestSiloDetails : ILocalSiloDetails
{
    public string Name => "test";
    public string ClusterId => "test";
    public string DnsHostName => "localhost";
    public SiloAddress SiloAddress { get; } = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11111), 1);
    public SiloAddress GatewayAddress => SiloAddress;
}
