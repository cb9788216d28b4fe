using System.Diagnostics;
using System.Net;
using Headwise.Grains.Forward;

namespace Headwise.Scaling;

/// <summary>
/// The cost of one frame on the tensor channel by payload size: two channels on loopback in this process, a frame sent
/// from one and claimed at the other (the same code the silos run between processes), over TCP or, as between silos
/// of one host, through /dev/shm.
/// </summary>
internal static class ChannelCost
{
    public static async Task<List<(double Bytes, double Ms)>> MeasureAsync(int repetitions, bool sharedMemory)
    {
        string? directory = sharedMemory ? "/dev/shm" : null;
        using var sender = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: directory);
        using var receiver = new TensorChannel(IPAddress.Loopback, sharedMemoryDirectory: directory);
        if (sharedMemory && receiver.SharedMemoryMarker is null) throw new InvalidOperationException("/dev/shm cannot hold the channel's files here.");
        var peer = new IPEndPoint(IPAddress.Loopback, receiver.Port);
        var points = new List<(double, double)>();
        foreach (int size in TransferCost.Sizes)
        {
            var payload = new byte[size];
            Random.Shared.NextBytes(payload);
            var times = new double[repetitions];
            for (int i = -3; i < repetitions; i++)
            {
                var ticket = Guid.NewGuid();
                long started = Stopwatch.GetTimestamp();
                var claimed = receiver.Receive(ticket, TimeSpan.FromSeconds(10), CancellationToken.None);
                await sender.Send(peer, ticket, payload, CancellationToken.None, receiver.SharedMemoryMarker);
                await claimed;
                if (i >= 0) times[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }
            Array.Sort(times);
            points.Add((size, times[repetitions / 2]));
        }
        return points;
    }
}
