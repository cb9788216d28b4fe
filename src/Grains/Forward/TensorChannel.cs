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
/// connection per frame in flight to a peer; a receiver holds a frame until the message naming its ticket claims it (either may come first),
/// and hands its bytes on as they arrive, so a silo can start on the front of X while the rest is on the wire.
/// Between two silos that share a shared-memory directory (the same host), the payload goes through a file there and
/// the frame carries only its header: loopback TCP moved 0.3–1.4 GB/s on the 2-vCPU dev machine, varying run to run
/// with where the kernel put the sending and receiving threads, where a copy runs at memory speed (NCCL and MPI choose
/// shared memory between processes of one host for the same reason). See <see cref="TensorChannelFiles"/>.
/// </summary>
public sealed class TensorChannel : IDisposable
{
    /// <summary>Smaller payloads ride inside the Orleans message: a frame would save nothing.</summary>
    public const int MinimumBytes = 64 << 10;

    /// <summary>The largest frame accepted: twice the largest request a gateway takes by default, with room to spare.</summary>
    public const int MaxFrameBytes = 256 << 20;

    private const uint Magic = 0x31575748; // "HWW1"
    private const uint FileMagic = 0x314D5748; // "HWM1": the payload is in the shared-memory file of its ticket
    private const int HeaderBytes = 24;
    private static readonly TimeSpan SocketTimeout = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan Unclaimed = TimeSpan.FromMinutes(1);

    // Socket buffers of a few megabytes: with the defaults a 3 MB frame crosses in many small reads and writes.
    private const int SocketBuffer = 4 << 20;

    // A peer whose machine vanished sends no FIN: without probes its connections look open for ever, a reader thread
    // waits on each between frames and an idle pooled connection passes for live. Probes after this long idle, every
    // KeepAliveInterval, KeepAliveProbes times, end such a connection within about a minute.
    internal const int KeepAliveIdleSeconds = 30, KeepAliveIntervalSeconds = 5, KeepAliveProbes = 3;

    // A frame's bytes are handed to its claimant as each read returns, at most this many at a time.
    private const int ReadPiece = 128 << 10;

    private readonly TcpListener _listener;
    private readonly ConcurrentDictionary<Guid, Slot> _inbox = new();
    private readonly ConcurrentDictionary<string, Peer> _peers = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<TcpClient, bool> _accepted = new();
    private long _lastSweep = Stopwatch.GetTimestamp();

    private readonly TensorBuffers _buffers;
    private readonly TensorChannelFiles? _files;

    /// <summary>Binds now (port 0: any free port), so the port can be advertised in the silo's metadata before it starts.</summary>
    /// <param name="buffers">Where received payloads come from; their claimant may return them there.</param>
    /// <param name="sharedMemoryDirectory">A directory in shared memory (/dev/shm) for payloads to peers that share it;
    /// null: every payload goes over TCP.</param>
    public TensorChannel(IPAddress address, int port = 0, TensorBuffers? buffers = null, string? sharedMemoryDirectory = null)
    {
        _buffers = buffers ?? new TensorBuffers();
        _files = sharedMemoryDirectory is null ? null : TensorChannelFiles.Open(sharedMemoryDirectory);
        // Payloads a killed silo left behind (its frames never claimed) go at start, not only when this channel next receives.
        _files?.DeleteOlderThan(Unclaimed);
        _listener = new TcpListener(address, port);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = AcceptLoop();
    }

    public int Port { get; }

    /// <summary>
    /// The name of this channel's marker file in its shared-memory directory, advertised beside <see cref="Port"/>: a
    /// sender that finds the file in its own directory shares it with this channel. Null when shared memory is off.
    /// </summary>
    public string? SharedMemoryMarker => _files?.Marker;

    /// <summary>Whether a payload to the peer advertising <paramref name="peerMarker"/> goes through shared memory.</summary>
    public bool Shares(string peerMarker) => _files?.Shares(peerMarker) == true;

    /// <summary>Frames whose payload came through shared memory rather than TCP.</summary>
    public long FramesThroughSharedMemory => Interlocked.Read(ref _framesThroughFiles);

    private long _framesThroughFiles;

    /// <summary>Frames this silo received, and their payload bytes.</summary>
    public long FramesReceived => Interlocked.Read(ref _framesReceived);
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    private long _framesReceived, _bytesReceived;

    /// <summary>
    /// The payload sent under <paramref name="ticket"/>, once all of it has arrived: an array of the silo's
    /// <see cref="TensorBuffers"/>, which the caller may return there once nothing reads it.
    /// </summary>
    public async Task<byte[]> Receive(Guid ticket, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var arriving = await Claim(ticket, timeout, cancellationToken);
        await arriving.Completed(cancellationToken);
        return arriving.Buffer;
    }

    /// <summary>
    /// The payload sent under <paramref name="ticket"/> as soon as its frame has begun to arrive: the rest of its bytes
    /// follow (<see cref="TensorProgress.WaitFor"/>), and it fails if the connection carrying them breaks. Its buffer is
    /// from the silo's <see cref="TensorBuffers"/>, as with <see cref="Receive"/>.
    /// </summary>
    public async Task<TensorProgress> Claim(Guid ticket, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var slot = _inbox.GetOrAdd(ticket, _ => new Slot());
        try
        {
            return await slot.Arrived.Task.WaitAsync(timeout, cancellationToken);
        }
        finally
        {
            _inbox.TryRemove(ticket, out _);
            Sweep();
        }
    }

    /// <summary>Sends <paramref name="payload"/> under <paramref name="ticket"/> to the channel at <paramref name="peer"/>.</summary>
    /// <param name="peerMarker">The peer's <see cref="SharedMemoryMarker"/>, when it advertises one.</param>
    public async Task Send(IPEndPoint peer, Guid ticket, byte[] payload, CancellationToken cancellationToken, string? peerMarker = null) =>
        await await Start(peer, ticket, TensorProgress.Complete(payload), cancellationToken, peerMarker);

    /// <summary>
    /// Starts sending <paramref name="payload"/> under <paramref name="ticket"/>, its bytes going out as they become ready:
    /// the returned task completes once the frame has begun (the peer is reachable: a message may now name the ticket), the
    /// task it gives once every byte is sent. Through shared memory the frame begins only when the payload is complete.
    /// Nothing here returns the payload's buffer: the caller does, once the send is done.
    /// </summary>
    public async Task<Task> Start(IPEndPoint peer, Guid ticket, TensorProgress payload, CancellationToken cancellationToken,
        string? peerMarker = null)
    {
        // Before the peer is taken: a sweep that ran between the two would forget a peer no connection has reached yet.
        Sweep();
        var connection = _peers.GetOrAdd(peer.ToString(), _ => new Peer(peer));
        if (_files is not null && peerMarker is not null && _files.Shares(peerMarker))
        {
            await payload.Completed(cancellationToken);
            _files.Write(ticket, payload.Buffer);
            try
            {
                await connection.Write(FileMagic, ticket, payload.Length, null, null, cancellationToken);
            }
            catch
            {
                _files.Delete(ticket);
                throw;
            }
            return Task.CompletedTask;
        }
        var begun = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // On the thread pool: the caller may be a grain, whose scheduler must not block on a socket.
        var sent = Task.Run(() => connection.Write(Magic, ticket, payload.Length, payload, begun, cancellationToken), cancellationToken);
        if (await Task.WhenAny(begun.Task, sent) == sent) await sent; // failed (or finished) before the frame began
        return sent;
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
        TensorProgress? arriving = null;
        try
        {
            client.NoDelay = true;
            client.ReceiveBufferSize = SocketBuffer;
            KeepAlive(client.Client);
            // A sender that stops mid-frame does not hold this thread and its buffer for ever.
            client.ReceiveTimeout = (int)SocketTimeout.TotalMilliseconds;
            var socket = client.Client;
            var header = new byte[HeaderBytes];
            while (!_stopping.IsCancellationRequested)
            {
                if (!ReceiveFrameStart(socket, header)) return;
                uint magic = BinaryPrimitives.ReadUInt32LittleEndian(header);
                if (magic != Magic && (magic != FileMagic || _files is null)) return; // not one of ours
                var ticket = new Guid(header.AsSpan(4, 16));
                int length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(20));
                if (length < 0 || length > MaxFrameBytes) return;
                if (magic == FileMagic)
                {
                    ReceiveFile(ticket, length);
                    continue;
                }
                var payload = _buffers.Rent(length);
                arriving = new TensorProgress(payload);
                _inbox.GetOrAdd(ticket, _ => new Slot()).Arrived.TrySetResult(arriving);
                // Its claimant may start on the first bytes: they are handed on a piece at a time.
                for (int read = 0; read < length;)
                {
                    int got = socket.Receive(payload.AsSpan(read, Math.Min(ReadPiece, length - read)));
                    if (got == 0) return;
                    read += got;
                    arriving.Advance(read);
                }
                arriving = null;
                Interlocked.Increment(ref _framesReceived);
                Interlocked.Add(ref _bytesReceived, length);
            }
        }
        catch (Exception)
        {
            // Whatever went wrong with this connection (the peer left, a timeout, garbage on the port) ends it alone;
            // passes whose frames it carried fail UNAVAILABLE and retry through Orleans.
        }
        finally
        {
            arriving?.Fail(new IOException("the connection carrying a tensor broke before all of it arrived."));
            _accepted.TryRemove(client, out _);
            client.Dispose();
        }
    }

    // The payload is in the sender's file for the ticket: read whole, then deleted. A file that cannot be read fails the
    // ticket's claim at once (the pass then fails UNAVAILABLE) instead of leaving it to time out.
    private void ReceiveFile(Guid ticket, int length)
    {
        var slot = _inbox.GetOrAdd(ticket, _ => new Slot());
        var payload = _buffers.Rent(length);
        try
        {
            _files!.Read(ticket, payload);
        }
        catch (IOException e)
        {
            _buffers.Return(payload);
            slot.Arrived.TrySetException(e);
            return;
        }
        Interlocked.Increment(ref _framesReceived);
        Interlocked.Increment(ref _framesThroughFiles);
        Interlocked.Add(ref _bytesReceived, length);
        slot.Arrived.TrySetResult(TensorProgress.Complete(payload));
    }

    private static void KeepAlive(Socket socket)
    {
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, KeepAliveIdleSeconds);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, KeepAliveIntervalSeconds);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, KeepAliveProbes);
    }

    /// <summary>The sockets this channel reads frames from and sends them on (for tests).</summary>
    internal IEnumerable<Socket> Sockets => _accepted.Keys.Select(c => c.Client).Concat(_peers.Values.SelectMany(p => p.Sockets));

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

    // Frames whose message never came (its pass failed before the relay read them) are dropped after a while, and so
    // are peers that closed every connection this channel held to them.
    private void Sweep()
    {
        long last = Interlocked.Read(ref _lastSweep);
        if (Stopwatch.GetElapsedTime(last) < Unclaimed || Interlocked.CompareExchange(ref _lastSweep, Stopwatch.GetTimestamp(), last) != last)
            return;
        foreach (var (ticket, slot) in _inbox)
            if (Stopwatch.GetElapsedTime(slot.Created) > Unclaimed) _inbox.TryRemove(ticket, out _);
        _files?.DeleteOlderThan(Unclaimed);
        ForgetClosedPeers();
    }

    /// <summary>Connections this channel holds open to its peers, idle or sending.</summary>
    internal int ConnectionsHeld => _peers.Values.Sum(p => p.Open);

    /// <summary>Peers this channel knows (each with its pool of connections).</summary>
    internal int PeersKnown => _peers.Count;

    /// <summary>
    /// Closes idle connections their peer has closed, and forgets a peer left with none: a silo that left the cluster
    /// (every rolling update of a deployment retires some) would otherwise keep its connections here half-closed for the
    /// life of this silo. A frame that takes a peer as it is forgotten still goes: its connection is closed after it.
    /// </summary>
    internal void ForgetClosedPeers()
    {
        foreach (var (key, peer) in _peers)
            if (peer.CloseDeadIdle() && _peers.TryRemove(new KeyValuePair<string, Peer>(key, peer)))
                peer.Retire();
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener.Stop();
        foreach (var peer in _peers.Values) peer.Dispose();
        foreach (var client in _accepted.Keys) client.Dispose(); // unblocks their reader threads
        _files?.Dispose();
    }

    private sealed class Slot
    {
        public readonly TaskCompletionSource<TensorProgress> Arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly long Created = Stopwatch.GetTimestamp();
    }

    /// <summary>
    /// Connections to a peer's channel, opened on first use and again after a failure. A frame holds one connection while
    /// it is written; frames sent at once (a partial sum still being computed, the next pass's X) take one each, so one
    /// slow frame does not hold back another.
    /// </summary>
    private sealed class Peer(IPEndPoint endpoint) : IDisposable
    {
        private const int MaxIdle = 4;
        private readonly ConcurrentBag<TcpClient> _idle = [];
        private readonly ConcurrentDictionary<TcpClient, bool> _open = new();
        private volatile bool _disposed;
        private int _writing;

        /// <param name="payload">The payload that follows the header, sent as it becomes ready; null when it went through a file.</param>
        /// <param name="begun">Completed once the header is written.</param>
        public async Task Write(uint magic, Guid ticket, int length, TensorProgress? payload, TaskCompletionSource? begun,
            CancellationToken cancellationToken)
        {
            // Counted from before its connection is taken, so a sweep never forgets a peer a frame is on its way to.
            Interlocked.Increment(ref _writing);
            try
            {
                await WriteFrame(magic, ticket, length, payload, begun, cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _writing);
            }
        }

        private async Task WriteFrame(uint magic, Guid ticket, int length, TensorProgress? payload, TaskCompletionSource? begun,
            CancellationToken cancellationToken)
        {
            var header = new byte[HeaderBytes];
            BinaryPrimitives.WriteUInt32LittleEndian(header, magic);
            ticket.TryWriteBytes(header.AsSpan(4, 16));
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(20), length);
            var client = await Connection(cancellationToken);
            try
            {
                // The peer is reachable: a message may name the ticket now. The header itself waits for the payload's first
                // bytes, so a frame's reader (which gives up on a connection silent for SocketTimeout mid-frame) does not
                // wait through the compute that comes before them.
                begun?.TrySetResult();
                if (payload is not null && length > 0) await payload.WaitFor(1, cancellationToken);
                // Blocking sends, for the reason the reader blocks (a few milliseconds of one pool thread per frame);
                // a header alone fits the socket's buffer and goes at once.
                var socket = client.Client;
                socket.Send(header);
                for (int sent = 0; payload is not null && sent < length;)
                {
                    await payload.WaitFor(sent + 1, cancellationToken);
                    int ready = payload.Available;
                    for (var rest = payload.Buffer.AsSpan(sent, ready - sent); !rest.IsEmpty;) rest = rest[socket.Send(rest)..];
                    sent = ready;
                }
            }
            catch
            {
                // A half-written frame leaves the stream unusable: this connection closes (its reader fails the frame).
                _open.TryRemove(client, out _);
                client.Dispose();
                throw;
            }
            // A burst of frames in flight leaves as many connections; a few stay open for the next ones.
            if (_disposed || _idle.Count >= MaxIdle)
            {
                _open.TryRemove(client, out _);
                client.Dispose();
            }
            else
            {
                _idle.Add(client);
                // Retired meanwhile (forgotten by a sweep): nothing would take this connection from the pool again.
                if (_disposed) Retire();
            }
        }

        private async Task<TcpClient> Connection(CancellationToken cancellationToken)
        {
            while (_idle.TryTake(out var idle))
            {
                if (StillOpen(idle)) return idle;
                _open.TryRemove(idle, out _);
                idle.Dispose();
            }
            var client = new TcpClient { NoDelay = true, SendBufferSize = SocketBuffer, SendTimeout = (int)SocketTimeout.TotalMilliseconds };
            KeepAlive(client.Client);
            try
            {
                using var connecting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                connecting.CancelAfter(SocketTimeout);
                await client.ConnectAsync(endpoint, connecting.Token);
            }
            catch
            {
                client.Dispose();
                throw;
            }
            _open[client] = true;
            return client;
        }

        /// <summary>Connections open to the peer, idle or sending.</summary>
        public int Open => _open.Count;

        public IEnumerable<Socket> Sockets => _open.Keys.Select(c => c.Client);

        /// <summary>Closes the idle connections the peer has closed; true when none is left open and no frame is on its way.</summary>
        public bool CloseDeadIdle()
        {
            // Taken out first and the live ones put back after: the bag hands a thread back what it last added.
            var taken = new List<TcpClient>();
            for (int idle = _idle.Count; taken.Count < idle && _idle.TryTake(out var client);) taken.Add(client);
            foreach (var client in taken)
            {
                if (StillOpen(client))
                {
                    _idle.Add(client);
                    continue;
                }
                _open.TryRemove(client, out _);
                client.Dispose();
            }
            return _open.IsEmpty && Volatile.Read(ref _writing) == 0;
        }

        // An idle connection the peer has closed (its process ended; a silo restarted on the same port listens anew) reads
        // as readable with nothing to read. TcpClient.Connected says only how the last operation went, so the first frame
        // after a restart went into the dead connection and failed the pass. A peer gone without closing (a lost machine)
        // still looks open: that frame fails on the socket's timeout, as any would.
        private static bool StillOpen(TcpClient client)
        {
            try
            {
                var socket = client.Client;
                return client.Connected && !(socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return false;
            }
        }

        /// <summary>No connection goes back to the idle pool any more; a frame still being written finishes on its own and
        /// closes its connection after.</summary>
        public void Retire()
        {
            _disposed = true;
            while (_idle.TryTake(out var client))
            {
                _open.TryRemove(client, out _);
                client.Dispose();
            }
        }

        public void Dispose()
        {
            _disposed = true;
            foreach (var client in _open.Keys) client.Dispose();
        }
    }
}
