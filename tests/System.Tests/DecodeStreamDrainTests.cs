using System.Diagnostics;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Headwise.Client;
using Headwise.TestSupport;
using Headwise.V1;
using Xunit.Abstractions;

namespace Headwise.SystemTests;

/// <summary>
/// A rolling update ends open decode streams cleanly: two silo processes (Redis clustering and storage), a session
/// stepped over a DecodeStream through the second silo's gateway by a plain gRPC client, and SIGTERM to that silo. The
/// stream goes on answering through the drain time, then ends between steps with UNAVAILABLE naming the session's
/// position, well before the host's 30 s shutdown timeout (which it used to hold up, to be cut off mid-step); the
/// silo exits 0, and the session goes on through the other gateway from that position to the exact causal Forward.
/// </summary>
public sealed class DecodeStreamDrainTests(ITestOutputHelper log)
{
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-small-shape");
    private const double DrainSeconds = 3;

    [Fact]
    public async Task SIGTERM_ends_an_open_decode_stream_after_the_drain_and_the_session_goes_on_elsewhere()
    {
        await using var redis = await RedisServer.StartAsync();
        var silos = new List<SiloProcess>();
        try
        {
            var environment = RedisSilos.Environment(redis);
            environment["Headwise__DrainSeconds"] = DrainSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            for (int i = 0; i < 2; i++) silos.Add(SiloProcess.Start(BuiltPrograms.SiloDll, environment));
            await Task.WhenAll(silos.Select(s => s.WaitUntilHealthyAsync()));
            await using var orleans = await RedisClusterClient.ConnectAsync(redis.ConnectionString);
            await orleans.WaitForActiveSilosAsync(silos.Select(s => s.SiloPort).ToArray());

            int batch = Golden.Batch, tokens = Golden.Tokens, modelDim = Golden.Spec.ModelDim;
            using var firstChannel = GrpcChannel.ForAddress(silos[0].GrpcAddress);
            var first = new Attention.AttentionClient(firstChannel);
            await using (var admin = new GrpcAttentionClient(silos[0].GrpcAddress))
            {
                await admin.CreateModelAsync("stream-drain", Golden.Spec);
                await admin.UploadWeightsAsync("stream-drain", new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
            }
            var expected = (await first.ForwardAsync(GoldenForwardRequest.For("stream-drain", Golden))).Output.Data.ToArray();

            using var secondChannel = GrpcChannel.ForAddress(silos[1].GrpcAddress);
            var second = new Attention.AttentionClient(secondChannel);
            string session = (await second.OpenSessionAsync(new OpenSessionRequest { Model = "stream-drain", Layer = 0, MaxTokens = tokens })).Session;
            var actual = new float[batch * tokens * modelDim];
            int position = 0;

            using var stream = second.DecodeStream();
            async Task<DecodeStreamResponse> RoundTrip(DecodeStreamRequest request)
            {
                try
                {
                    await stream.RequestStream.WriteAsync(request);
                }
                catch (Exception e) when (e is RpcException or InvalidOperationException or IOException)
                {
                    // The server ended the stream as this message went out: reading the response says why.
                    log.WriteLine($"the write failed: {e.GetType().Name}: {e.Message}");
                }
                Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None), "the stream ended without an answer");
                return stream.ResponseStream.Current;
            }
            async Task Step(Func<DecodeStreamRequest, Task<DecodeStreamResponse>> send)
            {
                var answer = await send(StepRequest(session, position));
                Assert.Equal(position + 1, answer.Position);
                Keep(actual, answer.Output.Data.Span, position);
                position++;
            }

            for (int i = 0; i < tokens / 3; i++) await Step(RoundTrip);

            var clock = Stopwatch.StartNew();
            using (var term = Process.Start(new ProcessStartInfo("kill", $"-TERM {silos[1].ProcessId}") { UseShellExecute = false })!)
                await term.WaitForExitAsync();

            // Through the drain time the silo serves on: a step sent once the silo says it is draining (its readiness
            // answers 503) is answered on the same stream. Sent as soon as that is seen, not after a fixed wait, so a
            // stalled test machine does not push the step past the drain.
            using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) })
            {
                while (clock.Elapsed < TimeSpan.FromSeconds(DrainSeconds))
                {
                    try
                    {
                        using var ready = await http.GetAsync(new Uri(silos[1].WebAddress, "/healthz/ready"));
                        if (ready.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable) break;
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                    {
                        break; // no longer listening: the step below says whether the stream still serves
                    }
                    await Task.Delay(20);
                }
            }
            log.WriteLine($"draining seen {clock.Elapsed.TotalSeconds:F2} s after SIGTERM");
            await Step(RoundTrip);
            int drainedAt = position;

            // Then the stream is ended by the silo, with no step in hand: pings until it says so.
            RpcException? ended = null;
            while (ended is null && clock.Elapsed < TimeSpan.FromSeconds(40))
            {
                try
                {
                    var pong = await RoundTrip(new DecodeStreamRequest { Ping = true });
                    Assert.True(pong.Ping);
                    await Task.Delay(100);
                }
                catch (RpcException e)
                {
                    ended = e;
                }
            }
            var endedAfter = clock.Elapsed;
            log.WriteLine($"stream ended {endedAfter.TotalSeconds:F1} s after SIGTERM: {ended?.StatusCode}: {ended?.Status.Detail}");
            if (ended?.StatusCode != StatusCode.Unavailable) log.WriteLine(silos[1].Output);
            Assert.NotNull(ended);
            Assert.Equal(StatusCode.Unavailable, ended.StatusCode);
            Assert.Contains($"the session is at position {drainedAt}", ended.Status.Detail);
            Assert.InRange(endedAfter.TotalSeconds, DrainSeconds - 0.5, DrainSeconds + 10);
            int exit = await silos[1].WaitForExitAsync(TimeSpan.FromSeconds(60));
            log.WriteLine($"silo exited {clock.Elapsed.TotalSeconds:F1} s after SIGTERM with {exit}");
            Assert.Equal(0, exit);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(25), $"the silo took {clock.Elapsed.TotalSeconds:F1} s to stop");

            // The session goes on through the other gateway, from the position the stream named.
            using var resumed = first.DecodeStream();
            async Task<DecodeStreamResponse> ResumedRoundTrip(DecodeStreamRequest request)
            {
                await resumed.RequestStream.WriteAsync(request);
                Assert.True(await resumed.ResponseStream.MoveNext(CancellationToken.None), "the resumed stream ended without an answer");
                return resumed.ResponseStream.Current;
            }
            while (position < tokens) await Step(ResumedRoundTrip);
            await resumed.RequestStream.CompleteAsync();

            // Bounds of Tolerance (max abs 1e-4, relative Frobenius 1e-5) against the cluster's causal Forward, which
            // the golden tests hold to libtorch's float64 reference within the same bounds.
            Tolerance.AssertClose(MemoryMarshal.Cast<byte, float>(expected), actual, "decode across a drained stream");
        }
        finally
        {
            foreach (var silo in Enumerable.Reverse(silos)) await silo.DisposeAsync();
        }
    }

    // Token `position` of every sequence: [batch, 1, D].
    private static DecodeStreamRequest StepRequest(string session, int position)
    {
        int batch = Golden.Batch, tokens = Golden.Tokens, modelDim = Golden.Spec.ModelDim;
        var rows = new float[batch * modelDim];
        for (int b = 0; b < batch; b++)
            Golden.Input.AsSpan((b * tokens + position) * modelDim, modelDim).CopyTo(rows.AsSpan(b * modelDim));
        var input = new Tensor { Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(rows.AsSpan())) };
        input.Shape.Add([batch, 1, modelDim]);
        return new DecodeStreamRequest { Session = session, Input = input, ExpectedPosition = position };
    }

    private static void Keep(float[] actual, ReadOnlySpan<byte> output, int position)
    {
        int batch = Golden.Batch, tokens = Golden.Tokens, modelDim = Golden.Spec.ModelDim;
        var rows = MemoryMarshal.Cast<byte, float>(output);
        for (int b = 0; b < batch; b++)
            rows.Slice(b * modelDim, modelDim).CopyTo(actual.AsSpan((b * tokens + position) * modelDim));
    }
}
