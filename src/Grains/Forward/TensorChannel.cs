using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Headwise.Grains.Forward;

/// <summary>
/// The silo-to-silo data channel for bulk tensors: X on its way down the broadcast tree and the partial sums on their
/// way up travel here, while the Orleans messages of the pass carry only a ticket for them (control path, placement and
/// failure handling stay with Orleans). Measured on the 2-core dev machine, an Orleans message moved a 1–4 MB byte[]
/// at 160–180 MB/s between two silo processes, where loopback TCP moves 2.7 GB/s: the 6 MB of a 2-silo GPT-2-small
/// pass at T = 1024 cost more than the heads' compute. Frames are [16-byte ticket][4-byte length][payload], over one
/// connection per peer; a receiver holds a frame until the message naming its ticket claims it (either may come first).
/// </summary>
public sealed class TensorChannel : IDisposable
{
    /// <summary>Smaller payloads ride inside the Orleans message: a frame would save nothing.</summary>
    public const int MinimumBytes = 64 << 10;

    /// <summary>The largest frame accepted: twice the largest request a gateway takes by default, with room to spare.</summary>
    public const int MaxFrameBytes = 256 << 20;

    private const uint Magic = 0x31575748; // "HWW1"
    private const int HeaderBytes = 24;
    private static readonly TimeSpan SocketTimeout = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan Unclaimed = TimeSpan.FromMinutes(1);

    // Socket buffers of a few megabytes: with the defaults a 3 MB frame crosses in many small reads and writes.
    private const int SocketBuffer = 4 << 20;

    private readonly TcpListener _listener;
    private readonly ConcurrentDictionary<Guid, Slot> _inbox = new();
    private readonly ConcurrentDictionary<string, Peer> _peers = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<TcpClient, bool> _accepted = new();
    private long _lastSweep = Stopwatch.GetTimestamp();

    private readonly TensorBuffers _buffers;

    /// <summary>Binds now (port 0: any free port), so the port can be advertised in the silo's metadata before it starts.</summary>
    /// <param name="buffers">Where received payloads come from; their claimant may return them there.</param>
    public TensorChannel(IPAddress address, int port = 0, TensorBuffers? buffers = null)
    {
        _buffers = buffers ?? new TensorBuffers();
        _listener = new TcpListener(address, port);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = AcceptLoop();
    }

    public int Port { get; }

    /// <summary>Frames this silo received, and their payload bytes.</summary>
    public long FramesReceived => Interlocked.Read(ref _framesReceived);
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    private long _framesReceived, _bytesReceived;

    /// <summary>
    /// The payload sent under <paramref name="ticket"/>, once it has arrived: an array of the silo's
    /// <see cref="TensorBuffers"/>, which the caller may return there once nothing reads it.
    /// </summary>
    public async Task<byte[]> Receive(Guid ticket, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var slot = _inbox.GetOrAdd(ticket, _ => new Slot());
        try
        {
            return await slot.Payload.Task.WaitAsync(timeout, cancellationToken);
        }
        finally
        {
            _inbox.TryRemove(ticket, out _);
            Sweep();
        }
    }

    /// <summary>Sends <paramref name="payload"/> under <paramref name="ticket"/> to the channel at <paramref name="peer"/>.</summary>
    public async Task Send(IPEndPoint peer, Guid ticket, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var connection = _peers.GetOrAdd(peer.ToString(), _ => new Peer(peer));
        await connection.Write(ticket, payload, cancellationToken);
    }

    private async Task AcceptLoop()
    {
        while (!_stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stopping.Token);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            // Blocking reads on a thread of its own: .NET's asynchronous socket reads hop through epoll and the thread pool
            // for every few hundred KB, which measured 16 ms for a 4 MB frame here where a blocking read takes about 1 ms.
            new Thread(() => ReadLoop(client)) { IsBackground = true, Name = "Headwise tensor channel" }.Start();
        }
    }

    private void ReadLoop(TcpClient client)
    {
        _accepted[client] = true;
        try
        {
            client.NoDelay = true;
            client.ReceiveBufferSize = SocketBuffer;
            // A sender that stops mid-frame does not hold this thread and its buffer for ever.
            client.ReceiveTimeout = (int)SocketTimeout.TotalMilliseconds;
            var socket = client.Client;
            var header = new byte[HeaderBytes];
            while (!_stopping.IsCancellationRequested)
            {
                if (!ReceiveFrameStart(socket, header)) return;
                if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic) return; // not one of ours
                var ticket = new Guid(header.AsSpan(4, 16));
                int length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(20));
                if (length < 0 || length > MaxFrameBytes) return;
                var payload = _buffers.Rent(length);
                if (!ReceiveExactly(socket, payload)) return;
                Interlocked.Increment(ref _framesReceived);
                Interlocked.Add(ref _bytesReceived, length);
                _inbox.GetOrAdd(ticket, _ => new Slot()).Payload.TrySetResult(payload);
            }
        }
        catch (Exception)
        {
            // Whatever went wrong with this connection (the peer left, a timeout, garbage on the port) ends it alone;
            // passes whose frames it carried fail UNAVAILABLE and retry through Orleans.
        }
        finally
        {
            _accepted.TryRemove(client, out _);
            client.Dispose();
        }
    }

    // Between frames a connection may be idle for as long as the cluster is: only a frame once begun has a deadline.
    private static bool ReceiveFrameStart(Socket socket, Span<byte> header)
    {
        while (true)
        {
            try
            {
                int read = socket.Receive(header);
                if (read == 0) return false;
                return ReceiveExactly(socket, header[read..]);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
            }
        }
    }

    private static bool ReceiveExactly(Socket socket, Span<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int read = socket.Receive(buffer);
            if (read == 0) return false;
            buffer = buffer[read..];
        }
        return true;
    }

    // Frames whose message never came (its pass failed before the relay read them) are dropped after a while.
    private void Sweep()
    {
        if (Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastSweep)) < Unclaimed) return;
        Interlocked.Exchange(ref _lastSweep, Stopwatch.GetTimestamp());
        foreach (var (ticket, slot) in _inbox)
            if (Stopwatch.GetElapsedTime(slot.Created) > Unclaimed) _inbox.TryRemove(ticket, out _);
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener.Stop();
        foreach (var peer in _peers.Values) peer.Dispose();
        foreach (var client in _accepted.Keys) client.Dispose(); // unblocks their reader threads
    }

    private sealed class Slot
    {
        public readonly TaskCompletionSource<byte[]> Payload = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly long Created = Stopwatch.GetTimestamp();
    }

    /// <summary>One connection to a peer's channel, opened on first use and again after a failure; one frame at a time.</summary>
    private sealed class Peer(IPEndPoint endpoint) : IDisposable
    {
        private readonly SemaphoreSlim _writing = new(1, 1);
        private TcpClient? _client;

        public async Task Write(Guid ticket, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
        {
            var header = new byte[HeaderBytes];
            BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
            ticket.TryWriteBytes(header.AsSpan(4, 16));
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(20), payload.Length);
            await _writing.WaitAsync(cancellationToken);
            try
            {
                if (_client is not { Connected: true })
                {
                    _client?.Dispose();
                    _client = new TcpClient { NoDelay = true, SendBufferSize = SocketBuffer, SendTimeout = (int)SocketTimeout.TotalMilliseconds };
                    using var connecting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    connecting.CancelAfter(SocketTimeout);
                    await _client.ConnectAsync(endpoint, connecting.Token);
                }
                var socket = _client.Client;
                try
                {
                    // Blocking sends, for the reason the reader blocks (a few milliseconds of one pool thread per frame).
                    await Task.Run(() =>
                    {
                        socket.Send(header);
                        for (var rest = payload.Span; !rest.IsEmpty;) rest = rest[socket.Send(rest)..];
                    }, cancellationToken);
                }
                catch
                {
                    // A half-written frame leaves the stream unusable: start over on the next frame.
                    _client.Dispose();
                    _client = null;
                    throw;
                }
            }
            finally
            {
                _writing.Release();
            }
        }

        public void Dispose() => _client?.Dispose();
    }
}
