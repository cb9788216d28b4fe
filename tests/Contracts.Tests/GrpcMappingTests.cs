using System.Runtime.InteropServices;
using Google.Protobuf;
using Headwise.Client;
using Proto = Headwise.V1;

namespace Headwise.Contracts.Tests;

/// <summary>The SDK reads Y out of a parsed response: the values as sent, without copying the megabytes again.</summary>
public sealed class GrpcMappingTests
{
    [Fact]
    public void A_forward_answers_Y_as_sent_without_a_second_copy_of_its_bytes()
    {
        var random = new Random(3);
        var y = Enumerable.Range(0, 1024 * 768).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var sent = new Proto.ForwardResponse
        {
            Output = new Proto.Tensor { Dtype = Proto.DType.F32, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(y.AsSpan())) },
        };
        sent.Output.Shape.Add([1, 1024, 768]);
        // Parsed from the wire, as a call's response is.
        var response = Proto.ForwardResponse.Parser.ParseFrom(sent.ToByteArray());

        long before = GC.GetAllocatedBytesForCurrentThread();
        var output = GrpcMapping.FromProto(response).Output;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal([1, 1024, 768], output.Shape);
        Assert.Equal(y, output.Data.ToArray());
        Assert.True(allocated < y.Length * sizeof(float) / 4, $"mapping Y allocated {allocated} bytes for a {y.Length * sizeof(float)}-byte tensor");
        // Pinned (as a stream writing the memory does), the view reads the same floats from any element on.
        using (var handle = output.Data[1000..].Pin())
        {
            var copy = new float[8];
            Marshal.Copy(Pinned(handle), copy, 0, copy.Length);
            Assert.Equal(y.AsSpan(1000, 8).ToArray(), copy);
        }
    }

    private static unsafe nint Pinned(System.Buffers.MemoryHandle handle) => (nint)handle.Pointer;

    [Fact]
    public void A_previous_answers_Y_chained_into_shared_memory_lands_there_whole()
    {
        // Layer after layer through shared memory, the SDK writes the last answer's Y (a view of its message's bytes) as X.
        var y = Enumerable.Range(0, 4096).Select(i => i * 0.25f - 7).ToArray();
        var view = FloatsOverBytes.Of(MemoryMarshal.AsBytes(y.AsSpan()).ToArray());
        Assert.True(FloatsOverBytes.TryGetBytes(view[100..300], out var bytes));
        Assert.Equal(100 * sizeof(float), bytes.Offset);
        Assert.Equal(200 * sizeof(float), bytes.Count);

        var directory = Directory.CreateTempSubdirectory("headwise-shm-test-");
        try
        {
            using var buffer = SharedMemoryBuffer.Create(directory.FullName, 8 * 1024);
            buffer.Write(64, view[100..300]);
            var back = new float[200];
            buffer.Read(64, back);
            Assert.Equal(y.AsSpan(100, 200).ToArray(), back);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void A_tensor_whose_bytes_are_not_a_whole_array_is_copied_and_still_right()
    {
        var y = new[] { 1.5f, -2.25f, 3.125f };
        var bytes = new byte[4 + y.Length * sizeof(float)];
        MemoryMarshal.AsBytes(y.AsSpan()).CopyTo(bytes.AsSpan(4));
        // A slice of a larger array: no view of the whole array is possible.
        var memory = new ReadOnlyMemory<byte>(bytes, 4, y.Length * sizeof(float));
        Assert.Equal(y, FloatsOverBytes.Of(memory).ToArray());
    }
}
