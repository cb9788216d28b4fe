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
        await sender.Send(peer, late, payload[..1000], CancellationToken.None);
        Assert.Equal(payload.AsSpan(0, 1000).ToArray(), await receiver.Receive(late, TimeSpan.FromSeconds(10), CancellationToken.None));
    }

    [Fact]
    public async Task A_peer_restarted_on_the_same_port_gets_the_next_frame_though_the_sender_held_a_connection_to_the_old_one()
    {
        using var sender = new TensorChannel(IPAddress.Loopback);
        int port;
        var payload = Enumerable.Range(0, 1 << 20).Select(i => (byte)(i * 11)).ToArray();
        var peer = new IPEndPoint(IPAddress.Loopback, 0);
        Guid ticket;
        // The old process is gone once this block ends (its connections closed); a new one then listens where it did, as
        // a silo restarted in place.
        using (var first = new TensorChannel(IPAddress.Loopback))
        {
            port = first.Port;
            peer = new IPEndPoint(IPAddress.Loopback, port);
            ticket = Guid.NewGuid();
            await sender.Send(peer, ticket, payload, CancellationToken.None);
            Assert.Equal(payload, await first.Receive(ticket, TimeSpan.FromSeconds(10), CancellationToken.None));
        }
        using var second = new TensorChannel(IPAddress.Loopback, port);
        for (int i = 0; i < 3; i++)
        {
            ticket = Guid.NewGuid();
            await sender.Send(peer, ticket, payload, CancellationToken.None);
            Assert.Equal(payload, await second.Receive(ticket, TimeSpan.FromSeconds(10), CancellationToken.None));
        }
    }

    [Fact]
    public async Task A_peer_that_left_is_forgotten_with_its_connections_and_a_live_one_keeps_its_own()
    {
        using var sender = new TensorChannel(IPAddress.Loopback);
        using var staying = new TensorChannel(IPAddress.Loopback);
        var leaving = new TensorChannel(IPAddress.Loopback);
        var payload = new byte[100_000];
        foreach (var receiver in new[] { staying, leaving })
        {
            var ticket = Guid.NewGuid();
            await sender.Send(new IPEndPoint(IPAddress.Loopback, receiver.Port), ticket, payload, CancellationToken.None);
            await receiver.Receive(ticket, TimeSpan.FromSeconds(10), CancellationToken.None);
        }
        Assert.Equal(2, sender.ConnectionsHeld);
        Assert.Equal(2, sender.PeersKnown);

        leaving.Dispose();
        // The sweep sees the leaver's close once it has arrived (at once on loopback; give it a moment under load).
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); sender.PeersKnown > 1 && waited.Elapsed < TimeSpan.FromSeconds(10);)
        {
            sender.ForgetClosedPeers();
            await Task.Delay(10);
        }
        Assert.Equal(1, sender.ConnectionsHeld);
        Assert.Equal(1, sender.PeersKnown);

        var again = Guid.NewGuid();
        await sender.Send(new IPEndPoint(IPAddress.Loopback, staying.Port), again, payload, CancellationToken.None);
        Assert.Equal(payload, await staying.Receive(again, TimeSpan.FromSeconds(10), CancellationToken.None));
        Assert.Equal(1, sender.ConnectionsHeld);
    }

    [Fact]
    public async Task Both_ends_of_a_channel_connection_probe_a_silent_peer()
    {
        // A peer whose machine vanishes sends no FIN; TCP keepalive is what ends its connections on either side.
        using var sender = new TensorChannel(IPAddress.Loopback);
        using var receiver = new TensorChannel(IPAddress.Loopback);
        var ticket = Guid.NewGuid();
        await sender.Send(new IPEndPoint(IPAddress.Loopback, receiver.Port), ticket, new byte[100_000], CancellationToken.None);
        await receiver.Receive(ticket, TimeSpan.FromSeconds(10), CancellationToken.None);
        var sockets = sender.Sockets.Concat(receiver.Sockets).ToList();
        Assert.Equal(2, sockets.Count);
        foreach (var socket in sockets)
        {
            Assert.Equal(1, (int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)!);
            Assert.Equal(TensorChannel.KeepAliveIdleSeconds, (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime)!);
            Assert.Equal(TensorChannel.KeepAliveIntervalSeconds, (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval)!);
            Assert.Equal(TensorChannel.KeepAliveProbes, (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount)!);
        }
    }

    [Fact]
    public async Task A_frames_bytes_reach_its_claimant_as_the_sender_makes_them()
    {
        using var sender = new TensorChannel(IPAddress.Loopback);
        using var receiver = new TensorChannel(IPAddress.Loopback);
        var payload = Enumerable.Range(0, 1 << 20).Select(i => (byte)(i * 11)).ToArray();
        var making = new TensorProgress(payload);
        var ticket = Guid.NewGuid();

        var sent = await sender.Start(new IPEndPoint(IPAddress.Loopback, receiver.Port), ticket, making, CancellationToken.None);
        // The frame begins with the payload's first bytes (its reader gives up on a connection silent mid-frame).
        var claiming = receiver.Claim(ticket, TimeSpan.FromSeconds(10), CancellationToken.None);
        await Task.Delay(100);
        Assert.False(claiming.IsCompleted);

        making.Advance(300_000);
        var arriving = await claiming;
        Assert.Equal(payload.Length, arriving.Length);
        await arriving.WaitFor(300_000, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(payload.AsSpan(0, 300_000).ToArray(), arriving.Buffer.AsSpan(0, 300_000).ToArray());
        // The rest is not there before the sender has it.
        await Task.Delay(100);
        Assert.True(arriving.Available <= 300_000);
        Assert.False(sent.IsCompleted);

        making.Advance(payload.Length);
        await sent.WaitAsync(TimeSpan.FromSeconds(10));
        await arriving.Completed(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(payload, arriving.Buffer);
    }

    [Fact]
    public async Task A_sender_that_gives_up_mid_frame_fails_its_claimant_instead_of_leaving_it_waiting()
    {
        using var sender = new TensorChannel(IPAddress.Loopback);
        using var receiver = new TensorChannel(IPAddress.Loopback);
        var making = new TensorProgress(new byte[1 << 20]);
        using var giveUp = new CancellationTokenSource();
        var ticket = Guid.NewGuid();

        var sent = await sender.Start(new IPEndPoint(IPAddress.Loopback, receiver.Port), ticket, making, giveUp.Token);
        making.Advance(100_000);
        var arriving = await receiver.Claim(ticket, TimeSpan.FromSeconds(10), CancellationToken.None);
        await arriving.WaitFor(100_000, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        giveUp.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sent);
        var failed = await Assert.ThrowsAsync<IOException>(() => arriving.Completed(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(15)));
        Assert.Contains("broke", failed.Message);
    }

    [Fact]
    public async Task A_frame_still_being_made_does_not_hold_back_the_next_one_to_the_same_peer()
    {
        using var sender = new TensorChannel(IPAddress.Loopback);
        using var receiver = new TensorChannel(IPAddress.Loopback);
        var peer = new IPEndPoint(IPAddress.Loopback, receiver.Port);
        var slow = new TensorProgress(new byte[200_000]);
        var slowSent = await sender.Start(peer, Guid.NewGuid(), slow, CancellationToken.None);

        var ticket = Guid.NewGuid();
        var payload = Enumerable.Range(0, 100_000).Select(i => (byte)i).ToArray();
        await sender.Send(peer, ticket, payload, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(payload, await receiver.Receive(ticket, TimeSpan.FromSeconds(10), CancellationToken.None));
        Assert.False(slowSent.IsCompleted);
        slow.Advance(200_000);
        await slowSent.WaitAsync(TimeSpan.FromSeconds(10));
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

    [Fact]
    public async Task Between_channels_that_share_a_directory_a_payload_goes_through_a_file_that_is_gone_once_read()
    {
        using var directory = new TemporaryDirectory();
        using var sender = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: directory.Path);
        using var receiver = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: directory.Path);
        Assert.NotNull(receiver.SharedMemoryMarker);
        var peer = new IPEndPoint(IPAddress.Loopback, receiver.Port);
        var payload = Enumerable.Range(0, 3 << 20).Select(i => (byte)(i * 13)).ToArray();

        var early = Guid.NewGuid();
        var claimed = receiver.Receive(early, TimeSpan.FromSeconds(10), CancellationToken.None);
        await sender.Send(peer, early, payload, CancellationToken.None, receiver.SharedMemoryMarker);
        Assert.Equal(payload, await claimed);

        var late = Guid.NewGuid();
        await sender.Send(peer, late, payload[..70_000], CancellationToken.None, receiver.SharedMemoryMarker);
        Assert.Equal(payload.AsSpan(0, 70_000).ToArray(), await receiver.Receive(late, TimeSpan.FromSeconds(10), CancellationToken.None));

        Assert.Equal(2, receiver.FramesThroughSharedMemory);
        Assert.Equal((3L << 20) + 70_000, receiver.BytesReceived);
        // Only the two channels' markers are left: each payload file was deleted by its reader.
        Assert.Equal(2, Directory.GetFiles(directory.Path).Length);
    }

    [Theory]
    [InlineData("elsewhere")]       // a marker this directory does not hold: the peer is on another host or container
    [InlineData("../../etc/passwd")] // never a path
    [InlineData("unreadable")]      // a marker that exists but cannot be opened (here: held locked)
    public async Task A_peer_whose_marker_is_not_in_the_directory_gets_the_payload_over_TCP(string marker)
    {
        using var directory = new TemporaryDirectory();
        using var other = new TemporaryDirectory();
        using var sender = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: directory.Path);
        using var receiver = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: other.Path);
        var peer = new IPEndPoint(IPAddress.Loopback, receiver.Port);
        string advertised = marker is "elsewhere" or "unreadable" ? receiver.SharedMemoryMarker! : marker;
        using var locked = marker == "unreadable"
            ? new FileStream(Path.Combine(directory.Path, advertised), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None)
            : null;
        var payload = Enumerable.Range(0, 100_000).Select(i => (byte)i).ToArray();

        var ticket = Guid.NewGuid();
        await sender.Send(peer, ticket, payload, CancellationToken.None, advertised);
        Assert.Equal(payload, await receiver.Receive(ticket, TimeSpan.FromSeconds(10), CancellationToken.None));
        Assert.Equal(0, receiver.FramesThroughSharedMemory);
        // The sender's marker (and the locked one), no payload file.
        Assert.Equal(locked is null ? 1 : 2, Directory.GetFiles(directory.Path).Length);
    }

    [Fact]
    public async Task A_frame_whose_file_is_missing_fails_its_claim_at_once_and_the_connection_goes_on()
    {
        using var directory = new TemporaryDirectory();
        using var receiver = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: directory.Path);
        using var stray = new TcpClient();
        await stray.ConnectAsync(IPAddress.Loopback, receiver.Port);
        var ticket = Guid.NewGuid();
        var header = new byte[24];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(header, 0x314D5748); // "HWM1": the payload is in a file
        ticket.TryWriteBytes(header.AsSpan(4, 16));
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(20), 1 << 20);
        await stray.GetStream().WriteAsync(header);

        var failed = await Assert.ThrowsAnyAsync<IOException>(() => receiver.Receive(ticket, TimeSpan.FromSeconds(10), CancellationToken.None));
        Assert.Contains(ticket.ToString("N"), failed.Message);

        // The same connection still carries frames.
        var next = Guid.NewGuid();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(header, 0x31575748); // "HWW1": inline
        next.TryWriteBytes(header.AsSpan(4, 16));
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(20), 3);
        await stray.GetStream().WriteAsync(header.Concat(new byte[] { 7, 8, 9 }).ToArray());
        Assert.Equal(new byte[] { 7, 8, 9 }, await receiver.Receive(next, TimeSpan.FromSeconds(10), CancellationToken.None));
    }

    [Fact]
    public void A_channel_that_starts_deletes_payload_files_older_than_a_minute_and_keeps_newer_ones()
    {
        using var directory = new TemporaryDirectory();
        string stale = Path.Combine(directory.Path, "headwise-tensor-" + Guid.NewGuid().ToString("N"));
        string fresh = Path.Combine(directory.Path, "headwise-tensor-" + Guid.NewGuid().ToString("N"));
        string other = Path.Combine(directory.Path, "someone-elses-file");
        foreach (var path in new[] { stale, fresh, other }) File.WriteAllBytes(path, new byte[10]);
        File.SetLastWriteTimeUtc(stale, DateTime.UtcNow.AddMinutes(-2));
        File.SetLastWriteTimeUtc(other, DateTime.UtcNow.AddMinutes(-2));

        using var channel = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: directory.Path);
        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(fresh)); // perhaps a frame still on its way to another silo of this host
        Assert.True(File.Exists(other));
    }

    [Fact]
    public async Task A_channel_that_starts_deletes_the_markers_of_dead_channels_and_keeps_those_of_live_ones()
    {
        using var directory = new TemporaryDirectory();
        using var live = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: directory.Path);
        // A killed silo's marker: the file, and no process holding it.
        string dead = Path.Combine(directory.Path, "headwise-channel-" + Guid.NewGuid().ToString("N"));
        File.WriteAllBytes(dead, []);

        using var starting = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: directory.Path);
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(Path.Combine(directory.Path, live.SharedMemoryMarker!)));
        Assert.True(File.Exists(Path.Combine(directory.Path, starting.SharedMemoryMarker!)));

        // The live one is still shared: a payload between them goes through the directory.
        var ticket = Guid.NewGuid();
        var payload = new byte[70_000];
        await starting.Send(new IPEndPoint(IPAddress.Loopback, live.Port), ticket, payload, CancellationToken.None, live.SharedMemoryMarker);
        Assert.Equal(payload, await live.Receive(ticket, TimeSpan.FromSeconds(10), CancellationToken.None));
        Assert.Equal(1, live.FramesThroughSharedMemory);
    }

    [Fact]
    public void A_directory_that_cannot_hold_files_leaves_the_channel_on_TCP()
    {
        using var receiver = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: "/nonexistent/headwise");
        Assert.Null(receiver.SharedMemoryMarker);
    }

    private sealed class TemporaryDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("headwise-channel-test-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
