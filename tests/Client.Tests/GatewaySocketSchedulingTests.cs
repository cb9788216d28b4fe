using Headwise.Silo;
using Headwise.Silo.Gateway;
using Headwise.TestSupport;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Headwise.Client.Tests;

/// <summary>Headwise__InlineScheduling reaches Kestrel's socket transport: on by default, off when set so.</summary>
public class GatewaySocketSchedulingTests
{
    // The default is checked on the options rather than through a built silo: a developer's environment may carry
    // Headwise__InlineScheduling (the performance docs' A/B commands export it), and the silo reads the environment.
    [Fact]
    public void Inline_scheduling_is_on_by_default() => Assert.True(new GatewayOptions().InlineScheduling);

    [Theory]
    [InlineData("false", false)]
    [InlineData("true", true)]
    public async Task The_setting_decides_whether_socket_continuations_run_inline(string setting, bool expected)
    {
        var ports = FreePorts.Take(4);
        var args = new List<string>
        {
            $"--Headwise:SiloPort={ports[0]}", $"--Headwise:GatewayPort={ports[1]}",
            $"--Headwise:GrpcPort={ports[2]}", $"--Headwise:WebPort={ports[3]}",
        };
        args.Add($"--Headwise:InlineScheduling={setting}");
        await using var silo = HeadwiseSilo.Build([.. args]);
        Assert.Equal(expected, silo.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value.UnsafePreferInlineScheduling);
    }
}
