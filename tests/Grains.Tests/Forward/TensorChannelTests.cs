using System.Net;
using System.Net.Sockets;
using System.Text;
using Headwise.Grains.Forward;

namespace Headwise.Grains.Tests.Forward;

public class TensorChannelTests
{
    [Fact]
    public async Task A_frame_arrives_whole_whether_its_claim_comes_first_or_last()
    {
        using var sender = new TensorChannel(IPAddress.Loopback);
        using var receiver = new TensorChannel(IPAddress.Loopback);
        var peer = new IPEndPoint(IPAddress.Loopback, receiver.Port);
        var payload = Enumerable.Range(0, 3 << 20).Select(i => (byte)(i * 7)).ToArray();

        var early = Guid.NewGuid();
        var claimed = receiver.Receive(early, TimeSpan.FromSeconds(10), CancellationToken.None);
        await sender.Send(peer, early, payload, CancellationToken.None);
        Assert.Equal(payload, await claimed);

        var late = Guid.NewGuid();
        await sender.Send(peer, late, payload.AsMemory(0, 1000), CancellationToken.None);
        Assert.Equal(payload.AsSpan(0, 1000).ToArray(), await receiver.Receive(late, TimeSpan.FromSeconds(10), CancellationToken.None));
    }

    [Fact]
    public async Task Garbage_on_the_port_closes_that_connection_only_and_allocates_nothing_it_names()
    {
        using var sender = new TensorChannel(IPAddress.Loopback);
        using var receiver = new TensorChannel(IPAddress.Loopback);
        long before = GC.GetTotalAllocatedBytes();
        // An HTTP request read as a frame header would name a ~2 GB frame: the magic turns it away.
        using (var stray = new TcpClient())
        {
            await stray.ConnectAsync(IPAddress.Loopback, receiver.Port);
            await stray.GetStream().WriteAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: silo\r\n\r\n"));
            var buffer = new byte[1];
            // The channel hangs up on it.
            Assert.Equal(0, await stray.GetStream().ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        }
        Assert.True(GC.GetTotalAllocatedBytes() - before < 100 << 20, "the stray header made the channel allocate its length");

        var ticket = Guid.NewGuid();
        await sender.Send(new IPEndPoint(IPAddress.Loopback, receiver.Port), ticket, new byte[] { 1, 2, 3 }, CancellationToken.None);
        Assert.Equal(new byte[] { 1, 2, 3 }, await receiver.Receive(ticket, TimeSpan.FromSeconds(10), CancellationToken.None));
    }

    [Fact]
    public async Task A_frame_that_never_comes_times_out()
    {
        using var receiver = new TensorChannel(IPAddress.Loopback);
        await Assert.ThrowsAsync<TimeoutException>(() => receiver.Receive(Guid.NewGuid(), TimeSpan.FromMilliseconds(200), CancellationToken.None));
    }
}
