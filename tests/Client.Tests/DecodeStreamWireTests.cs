using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Headwise.Contracts;
using Headwise.TestSupport;
using Headwise.V1;

namespace Headwise.Client.Tests;

/// <summary>
/// DecodeStream on the wire, through a raw gRPC client: what a client in another language sees. Answers come one per
/// message in order, those before a failing step included; the session is named on the first message only; a client
/// that closes its side ends the stream with OK, and one that vanishes mid-stream leaves the session usable.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class DecodeStreamWireTests(SiloFixture silo) : IAsyncLifetime
{
    private const string Model = "stream-wire";
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-tiny");
    private GrpcChannel _channel = null!;
    private Attention.AttentionClient _client = null!;
    private IAttentionClient _sdk = null!;

    private static int ModelDim => Golden.Spec.ModelDim;

    public async Task InitializeAsync()
    {
        _channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        _client = new Attention.AttentionClient(_channel);
        _sdk = silo.CreateGrpcClient();
        if ((await _sdk.ListModelsAsync()).Any(m => m.Name == Model)) return;
        await _sdk.CreateModelAsync(Model, Golden.Spec);
        await _sdk.UploadWeightsAsync(Model, new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
    }

    public async Task DisposeAsync()
    {
        await _sdk.DisposeAsync();
        _channel.Dispose();
    }

    private static Tensor Token(int seed, int modelDim = 0)
    {
        var random = new Random(seed);
        var values = new float[modelDim == 0 ? ModelDim : modelDim];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        var tensor = new Tensor { Dtype = DType.F32, Data = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())) };
        tensor.Shape.Add([1, 1, values.Length]);
        return tensor;
    }

    private async Task<string> OpenAsync() => (await _client.OpenSessionAsync(new OpenSessionRequest { Model = Model, MaxTokens = 16 })).Session;

    [Fact]
    public async Task Answers_come_in_order_up_to_a_failing_step_whose_status_ends_the_stream()
    {
        string session = await OpenAsync();
        using var call = _client.DecodeStream();
        // Written all at once, before any answer is read: the gateway answers them one by one, in order.
        await call.RequestStream.WriteAsync(new DecodeStreamRequest { Session = session, Ping = true });
        await call.RequestStream.WriteAsync(new DecodeStreamRequest { Input = Token(1) });
        await call.RequestStream.WriteAsync(new DecodeStreamRequest { Session = session, Input = Token(2), ExpectedPosition = 1 });
        await call.RequestStream.WriteAsync(new DecodeStreamRequest { Ping = true });
        await call.RequestStream.WriteAsync(new DecodeStreamRequest { Input = Token(3, ModelDim + 1) });
        await call.RequestStream.WriteAsync(new DecodeStreamRequest { Input = Token(4) });

        var answers = new List<DecodeStreamResponse>();
        var failure = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None)) answers.Add(call.ResponseStream.Current);
        });
        Assert.Equal(StatusCode.InvalidArgument, failure.StatusCode);
        Assert.Contains("model_dim", failure.Status.Detail);
        Assert.Equal(new[] { true, false, false, true }, answers.Select(a => a.Ping));
        Assert.Equal(new[] { 0, 1, 2, 0 }, answers.Select(a => a.Position));
        Assert.Null(answers[0].Output);
        Assert.Equal(new long[] { 1, 1, ModelDim }, answers[2].Output.Shape);
        // The step after the failing one was not applied.
        Assert.Equal(3, (await _sdk.DecodeAsync(session, new FloatTensor(new float[ModelDim], 1, 1, ModelDim), expectedPosition: 2)).Position);
    }

    [Fact]
    public async Task The_session_is_named_first_and_only_once()
    {
        string session = await OpenAsync(), other = await OpenAsync();

        using (var unnamed = _client.DecodeStream())
        {
            await unnamed.RequestStream.WriteAsync(new DecodeStreamRequest { Input = Token(1) });
            var missing = await Assert.ThrowsAsync<RpcException>(() => unnamed.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal(StatusCode.InvalidArgument, missing.StatusCode);
            Assert.Contains("session is missing", missing.Status.Detail);
        }

        using (var switched = _client.DecodeStream())
        {
            await switched.RequestStream.WriteAsync(new DecodeStreamRequest { Session = session, Input = Token(1) });
            await switched.RequestStream.WriteAsync(new DecodeStreamRequest { Session = other, Input = Token(2) });
            Assert.True(await switched.ResponseStream.MoveNext(CancellationToken.None));
            var differs = await Assert.ThrowsAsync<RpcException>(() => switched.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal(StatusCode.InvalidArgument, differs.StatusCode);
            Assert.Contains("session differs", differs.Status.Detail);
            // Neither id (a bearer token) is echoed.
            Assert.DoesNotContain(session, differs.Status.Detail);
            Assert.DoesNotContain(other, differs.Status.Detail);
        }
        Assert.Equal(1, (await _sdk.DecodeAsync(other, new FloatTensor(new float[ModelDim], 1, 1, ModelDim), expectedPosition: 0)).Position);
    }

    [Fact]
    public async Task A_client_that_completes_its_side_ends_the_stream_with_OK()
    {
        string session = await OpenAsync();
        using var call = _client.DecodeStream();
        await call.RequestStream.WriteAsync(new DecodeStreamRequest { Session = session, Input = Token(1) });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(1, call.ResponseStream.Current.Position);
        Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);

        using var empty = _client.DecodeStream();
        await empty.RequestStream.CompleteAsync();
        Assert.False(await empty.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.OK, empty.GetStatus().StatusCode);
    }

    [Fact]
    public async Task A_client_that_vanishes_mid_stream_leaves_the_session_usable()
    {
        string session = await OpenAsync();
        var call = _client.DecodeStream();
        await call.RequestStream.WriteAsync(new DecodeStreamRequest { Session = session, Input = Token(1) });
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        for (int i = 2; i <= 6; i++) await call.RequestStream.WriteAsync(new DecodeStreamRequest { Input = Token(i) });
        // Gone without completing its side or reading the answers (an RST_STREAM, as when a process dies).
        call.Dispose();

        // The steps already sent may or may not have run, and the session answers. The unary step goes on another
        // connection, which the reset does not order: the one step the gateway had read before the reset reached it may
        // still land after the unary one (CI saw it once), but no more than that one.
        var next = await _sdk.DecodeAsync(session, new FloatTensor(new float[ModelDim], 1, 1, ModelDim));
        Assert.InRange(next.Position, 2, 7);
        int at = next.Position;
        try
        {
            await using var again = await _sdk.OpenDecodeStreamAsync(session);
            Assert.Equal(at + 1, (await again.StepAsync(new FloatTensor(new float[ModelDim], 1, 1, ModelDim), at)).Position);
            return;
        }
        catch (HeadwiseException late) when (late.Code == ErrorCode.FailedPrecondition)
        {
            Assert.Contains($"is at position {at + 1}, not at the expected position {at}", late.Message);
        }
        await using var after = await _sdk.OpenDecodeStreamAsync(session);
        Assert.Equal(at + 2, (await after.StepAsync(new FloatTensor(new float[ModelDim], 1, 1, ModelDim), at + 1)).Position);
    }
}
