using System.Net;
using System.Net.Sockets;

namespace Headwise.TestSupport;

/// <summary>
/// Ports that were free a moment ago, for silos a test starts. They come from below Linux's ephemeral range
/// (32768–60999): a port the OS hands out for "port 0" can be taken again by any outgoing connection before the
/// silo binds it, which failed a CI run with "address already in use". No port is handed out twice per process.
/// </summary>
public static class FreePorts
{
    private const int First = 20000, Last = 32000;
    private static readonly HashSet<int> Given = [];
    private static readonly Random Pick = new();

    public static int[] Take(int count)
    {
        var ports = new List<int>(count);
        lock (Given)
        {
            for (int attempt = 0; ports.Count < count && attempt < 10_000; attempt++)
            {
                int port = Pick.Next(First, Last);
                if (Given.Contains(port) || !CanBind(port)) continue;
                Given.Add(port);
                ports.Add(port);
            }
        }
        return ports.Count == count ? ports.ToArray() : throw new InvalidOperationException($"found only {ports.Count} free ports of {count}.");
    }

    private static bool CanBind(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        try
        {
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        finally
        {
            listener.Stop();
        }
    }
}
