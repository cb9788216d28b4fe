using Grpc.Core;

namespace Headwise.Silo.Gateway;

/// <summary>
/// The client's side of a streaming call broke while the gateway read from or wrote to it (the client reset the stream
/// or went away). The transport reports that as an <see cref="IOException"/>, sometimes a moment before the call's
/// cancellation token is signalled; marking it where it happens lets the gateway answer it as CANCELLED rather than
/// log an internal error, without treating any other I/O failure the same way.
/// </summary>
public sealed class ClientStreamBrokenException(Exception inner) : Exception("the client's stream broke: " + inner.Message, inner)
{
    /// <summary>The reader of a call's request stream, with its transport failures marked.</summary>
    public static IAsyncStreamReader<T> Watch<T>(IAsyncStreamReader<T> reader) => new Reader<T>(reader);

    /// <summary>The writer of a call's response stream, with its transport failures marked.</summary>
    public static IServerStreamWriter<T> Watch<T>(IServerStreamWriter<T> writer) => new Writer<T>(writer);

    private sealed class Reader<T>(IAsyncStreamReader<T> inner) : IAsyncStreamReader<T>
    {
        public T Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            try
            {
                return await inner.MoveNext(cancellationToken);
            }
            catch (IOException e)
            {
                throw new ClientStreamBrokenException(e);
            }
        }
    }

    private sealed class Writer<T>(IServerStreamWriter<T> inner) : IServerStreamWriter<T>
    {
        public WriteOptions? WriteOptions
        {
            get => inner.WriteOptions;
            set => inner.WriteOptions = value;
        }

        public async Task WriteAsync(T message)
        {
            try
            {
                await inner.WriteAsync(message);
            }
            catch (IOException e)
            {
                throw new ClientStreamBrokenException(e);
            }
        }

        public async Task WriteAsync(T message, CancellationToken cancellationToken)
        {
            try
            {
                await inner.WriteAsync(message, cancellationToken);
            }
            catch (IOException e)
            {
                throw new ClientStreamBrokenException(e);
            }
        }
    }
}
