using System.Buffers;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Headwise.Client;
using Proto = Headwise.V1;

namespace Headwise.Contracts.Tests;

/// <summary>
/// The SDK's parse of a forward's answer into the caller's buffer: Y lands in the buffer without an array of its own, and
/// everything else of the response is what Google.Protobuf's own parse gives; an answer whose Y does not fit the buffer
/// exactly is parsed the ordinary way.
/// </summary>
public sealed class OutputIntoCallerBufferTests
{
    [Fact]
    public void Y_is_copied_into_the_buffer_and_the_rest_equals_the_generated_parse()
    {
        var (response, y) = Response(tokens: 512, seed: 1);
        var message = new ReadOnlySequence<byte>(response.ToByteArray());
        var destination = new float[y.Length];

        Parse(message, destination); // once, so the JIT's own allocations are not counted below
        Array.Clear(destination);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var answer = Parse(message, destination);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(answer.InDestination);
        Assert.Equal(y, destination);
        Assert.True(answer.Response.Output.Data.IsEmpty);
        var expected = response.Clone();
        expected.Output.Data = ByteString.Empty;
        Assert.Equal(expected, answer.Response);
        // Y is 1.5 MB; the rest (shape, reports, trace id) a few hundred bytes of objects.
        Assert.True(allocated < 64 * 1024, $"the parse allocated {allocated} bytes for a {y.Length * sizeof(float)}-byte Y");
    }

    [Fact]
    public void An_answer_whose_Y_does_not_fit_the_buffer_exactly_is_parsed_the_ordinary_way()
    {
        var (response, _) = Response(tokens: 4, seed: 2);
        var message = new ReadOnlySequence<byte>(response.ToByteArray());
        foreach (int length in new[] { 4 * 768 - 1, 4 * 768 + 1 })
        {
            var answer = Parse(message, new float[length]);
            Assert.False(answer.InDestination);
            Assert.Equal(response, answer.Response);
        }
    }

    private static OutputIntoCallerBuffer.Answer Parse(ReadOnlySequence<byte> message, float[] destination) =>
        OutputIntoCallerBuffer.Parse(message, destination);

    private static (Proto.ForwardResponse Response, float[] Y) Response(int tokens, int seed)
    {
        var random = new Random(seed);
        var y = Enumerable.Range(0, tokens * 768).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var response = new Proto.ForwardResponse
        {
            Output = new Proto.Tensor { Dtype = Proto.DType.F32, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(y.AsSpan())), Shape = { 1, tokens, 768 } },
            TraceId = "0af7651916cd43dd8448eb211c80319c",
            OutputProjection = "partial_sums",
        };
        response.Heads.Add(new Proto.HeadReport { Group = 3, Silo = "127.0.0.1:11111", Kernel = "simd", ComputeMs = 1.5, Heads = { 3 } });
        response.Silos.Add(new Proto.SiloTraffic { Silo = "127.0.0.1:11111", Groups = 12, BytesSent = 42 });
        return (response, y);
    }
}
