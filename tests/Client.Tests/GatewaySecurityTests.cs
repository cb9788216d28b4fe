using Grpc.Core;
using Grpc.Net.Client;
using Headwise.Contracts;
using Headwise.TestSupport;

namespace Headwise.Client.Tests;

/// <summary>
/// Headwise__ApiKey on a cleartext gateway: create, upload, delete and rebalance need `authorization: Bearer key`
/// (else UNAUTHENTICATED); reads and Forward do not while Headwise__RequireKeyForForward is false.
/// </summary>
public sealed class ApiKeyTests(KeyedSilo silo) : IClassFixture<KeyedSilo>
{
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-tiny");

    [Fact]
    public async Task Changes_need_the_key_and_reads_and_forwards_do_not()
    {
        await using var anonymous = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(key: null));
        await using var wrong = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(key: "not-the-key-0123456789"));
        await using var keyed = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(SecuredSilo.Key));

        await ExpectUnauthenticated(() => anonymous.CreateModelAsync("keyed", Golden.Spec));
        await ExpectUnauthenticated(() => wrong.CreateModelAsync("keyed", Golden.Spec));
        await keyed.CreateModelAsync("keyed", Golden.Spec);

        await ExpectUnauthenticated(() => anonymous.UploadWeightsAsync("keyed", new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix));
        await ExpectUnauthenticated(() => wrong.UploadWeightsAsync("keyed", new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix));
        await keyed.UploadWeightsAsync("keyed", new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);

        await ExpectUnauthenticated(() => anonymous.RebalanceAsync());
        Assert.True((await anonymous.GetModelAsync("keyed")).Ready);
        Assert.Contains(await anonymous.ListModelsAsync(), m => m.Name == "keyed");
        await AssertForwardCorrect(anonymous, "keyed");

        await ExpectUnauthenticated(() => anonymous.DeleteModelAsync("keyed"));
        await ExpectUnauthenticated(() => wrong.DeleteModelAsync("keyed"));
        await keyed.DeleteModelAsync("keyed");

        // Neither the key nor a wrong one shows up in the silo's log.
        Assert.NotEmpty(silo.Log);
        Assert.DoesNotContain(silo.Log, line => line.Contains(SecuredSilo.Key) || line.Contains("not-the-key"));
    }

    [Fact]
    public async Task A_raw_client_gets_UNAUTHENTICATED_naming_the_header()
    {
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        var client = new V1.Attention.AttentionClient(channel);
        var request = new V1.CreateModelRequest { Name = "raw", Spec = new V1.AttentionSpec { ModelDim = 64, HeadCount = 4 } };
        foreach (var headers in new Metadata?[] { null, [new("authorization", "Basic abc")], [new("authorization", "Bearer ")],
                     [new("authorization", "Bearer " + SecuredSilo.Key + "x")], [new("authorization", "Bearer " + SecuredSilo.Key[..^1])] })
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => client.CreateModelAsync(request, headers).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
            Assert.Contains("authorization", error.Status.Detail);
            Assert.DoesNotContain(SecuredSilo.Key, error.Status.Detail);
        }
        await client.CreateModelAsync(request, [new("authorization", "Bearer " + SecuredSilo.Key)]);
        await client.DeleteModelAsync(new V1.DeleteModelRequest { Name = "raw" }, [new("authorization", "bearer " + SecuredSilo.Key)]);
    }

    [Fact]
    public async Task The_SDK_takes_the_key_from_HEADWISE_API_KEY()
    {
        string? before = Environment.GetEnvironmentVariable(GrpcAttentionClientOptions.ApiKeyVariable);
        Environment.SetEnvironmentVariable(GrpcAttentionClientOptions.ApiKeyVariable, SecuredSilo.Key);
        try
        {
            await using var client = new GrpcAttentionClient(silo.GrpcAddress);
            await client.CreateModelAsync("from-env", Golden.Spec);
            await client.DeleteModelAsync("from-env");
        }
        finally
        {
            Environment.SetEnvironmentVariable(GrpcAttentionClientOptions.ApiKeyVariable, before);
        }
    }

    [Fact]
    public async Task Sessions_open_decode_and_close_without_the_key_and_the_id_stays_out_of_the_log()
    {
        await using var keyed = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(SecuredSilo.Key));
        await using var anonymous = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(key: null));
        await SessionModel.CreateAsync(keyed, "sessions-open");

        var session = await anonymous.OpenSessionAsync("sessions-open");
        var step = await anonymous.DecodeAsync(session.Id, SessionModel.Step());
        Assert.Equal(SessionModel.Tokens, step.Position);
        await anonymous.CloseSessionAsync(session.Id);
        var gone = await Assert.ThrowsAsync<HeadwiseException>(() => anonymous.DecodeAsync(session.Id, SessionModel.Step()));
        Assert.Equal(ErrorCode.NotFound, gone.Code);
        // The caller's error names the session by its digest, not by the bearer token it was sent.
        Assert.DoesNotContain(session.Id, gone.Message);
        Assert.Contains(SessionIds.GrainKey(session.Id), gone.Message);

        await keyed.DeleteModelAsync("sessions-open");
        Assert.NotEmpty(silo.Log);
        Assert.DoesNotContain(silo.Log, line => line.Contains(session.Id));
    }

    [Fact]
    public async Task A_stream_steps_without_the_key_and_a_client_gone_mid_stream_logs_no_error_nor_the_id()
    {
        await using var keyed = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(SecuredSilo.Key));
        await using var anonymous = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(key: null));
        await SessionModel.CreateAsync(keyed, "stream-open");
        var session = await anonymous.OpenSessionAsync("stream-open");
        await using (var stream = await anonymous.OpenDecodeStreamAsync(session.Id))
            Assert.Equal(SessionModel.Tokens, (await stream.StepAsync(SessionModel.Step())).Position);

        // A client gone mid-stream: steps written, the call reset without reading their answers.
        using (var channel = GrpcChannel.ForAddress(silo.GrpcAddress))
        {
            var call = new V1.Attention.AttentionClient(channel).DecodeStream();
            var step = SessionModel.Step();
            var input = new V1.Tensor { Dtype = V1.DType.F32, Data = Google.Protobuf.ByteString.CopyFrom(
                System.Runtime.InteropServices.MemoryMarshal.AsBytes(step.Data.Span)) };
            input.Shape.Add(step.Shape.Select(size => (long)size));
            await call.RequestStream.WriteAsync(new V1.DecodeStreamRequest { Session = session.Id, Input = input });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            await call.RequestStream.WriteAsync(new V1.DecodeStreamRequest { Input = input });
            call.Dispose();
        }
        var next = await anonymous.DecodeAsync(session.Id, SessionModel.Step());
        Assert.InRange(next.Position, 3 * SessionModel.Tokens, 4 * SessionModel.Tokens);
        await anonymous.CloseSessionAsync(session.Id);
        await keyed.DeleteModelAsync("stream-open");

        Assert.DoesNotContain(silo.Log, line => line.Contains(session.Id));
        Assert.DoesNotContain(silo.Log, line => line.StartsWith("Error:", StringComparison.Ordinal) && line.Contains("DecodeStream"));
    }

    internal static async Task ExpectUnauthenticated(Func<Task> call)
    {
        var error = await Assert.ThrowsAsync<HeadwiseException>(call);
        Assert.Equal(ErrorCode.Unauthenticated, error.Code);
        Assert.Contains("authorization", error.Message);
    }

    internal static async Task AssertForwardCorrect(IAttentionClient client, string model)
    {
        var output = await client.ForwardAsync(model, new AttentionInput
        {
            Input = new FloatTensor(Golden.Input, Golden.Batch, Golden.Tokens, Golden.Spec.ModelDim),
            Causal = true,
        });
        Tolerance.AssertClose(Golden.Expected("expected.0.causal"), output.Output.Data.Span, "forward through the secured gateway");
    }
}

/// <summary>
/// TLS on the gRPC port from a certificate made in the test, Forward needing the key
/// (Headwise__RequireKeyForForward=true), and Headwise__MaxConcurrentForwards answering RESOURCE_EXHAUSTED.
/// </summary>
public sealed class TlsGatewayTests(TlsSilo silo) : IClassFixture<TlsSilo>, IAsyncLifetime
{
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-tiny");
    private const string Model = "tls-served";

    public async Task InitializeAsync()
    {
        await using var keyed = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(SecuredSilo.Key));
        if ((await keyed.ListModelsAsync()).Any(m => m.Name == Model)) return;
        await keyed.CreateModelAsync(Model, Golden.Spec);
        await keyed.UploadWeightsAsync(Model, new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Forward_over_TLS_needs_the_key()
    {
        Assert.Equal("https", silo.GrpcAddress.Scheme);
        await using var anonymous = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(key: null));
        await using var keyed = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(SecuredSilo.Key));
        await ApiKeyTests.ExpectUnauthenticated(() => ApiKeyTests.AssertForwardCorrect(anonymous, Model));
        Assert.Contains(await anonymous.ListModelsAsync(), m => m.Name == Model);
        await ApiKeyTests.AssertForwardCorrect(keyed, Model);
    }

    [Fact]
    public async Task OpenSession_Decode_and_CloseSession_need_the_key_before_anything_else_is_checked()
    {
        await using var keyed = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(SecuredSilo.Key));
        await using var anonymous = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(key: null));
        await SessionModel.CreateAsync(keyed, "sessions-keyed");

        await ApiKeyTests.ExpectUnauthenticated(() => anonymous.OpenSessionAsync("sessions-keyed"));
        var session = await keyed.OpenSessionAsync("sessions-keyed");
        // A live session's id is not enough: the key is checked first.
        await ApiKeyTests.ExpectUnauthenticated(() => anonymous.DecodeAsync(session.Id, SessionModel.Step()));
        await ApiKeyTests.ExpectUnauthenticated(() => anonymous.CloseSessionAsync(session.Id));
        // A stream is refused as a whole: opening it (its first message) and the pipelined form alike.
        await ApiKeyTests.ExpectUnauthenticated(() => anonymous.OpenDecodeStreamAsync(session.Id));
        await ApiKeyTests.ExpectUnauthenticated(async () =>
        {
            await foreach (var _ in anonymous.DecodeStreamAsync(session.Id, new[] { SessionModel.Step() }.ToAsyncEnumerable()))
            {
            }
        });
        Assert.Equal(SessionModel.Tokens, (await keyed.DecodeAsync(session.Id, SessionModel.Step())).Position);
        await using (var stream = await keyed.OpenDecodeStreamAsync(session.Id))
            Assert.Equal(2 * SessionModel.Tokens, (await stream.StepAsync(SessionModel.Step())).Position);
        await keyed.CloseSessionAsync(session.Id);
        await keyed.DeleteModelAsync("sessions-keyed");
        Assert.DoesNotContain(silo.Log, line => line.Contains(session.Id));
    }

    [Fact]
    public async Task Cleartext_and_untrusted_clients_cannot_talk_to_the_TLS_port()
    {
        var cleartext = new Uri($"http://127.0.0.1:{silo.GrpcAddress.Port}");
        await using var plain = new GrpcAttentionClient(cleartext, new GrpcAttentionClientOptions { ApiKey = SecuredSilo.Key, MaxAttempts = 1 });
        var error = await Assert.ThrowsAsync<HeadwiseException>(() => plain.ListModelsAsync());
        Assert.NotEqual(ErrorCode.Unauthenticated, error.Code);

        // The default handler checks the chain: a self-signed certificate is refused.
        await using var untrusting = new GrpcAttentionClient(silo.GrpcAddress, new GrpcAttentionClientOptions { ApiKey = SecuredSilo.Key, MaxAttempts = 1 });
        var refused = await Assert.ThrowsAsync<HeadwiseException>(() => untrusting.ListModelsAsync());
        Assert.NotEqual(ErrorCode.Unauthenticated, refused.Code);
    }

    [Fact]
    public async Task A_forward_past_its_deadline_ends_in_time_and_the_model_still_serves()
    {
        // A pass of hundreds of milliseconds (T = 4096, batch 16: 16 MB in, 16 MB out) under a 150 ms deadline: long enough
        // for the 16 MB request to arrive (a deadline that ends mid-upload races the server's reset of the unread stream,
        // which a client reports as CANCELLED), far shorter than the pass.
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(silo.GrpcAddress, new Grpc.Net.Client.GrpcChannelOptions
        {
            HttpHandler = silo.ClientOptions(null).HttpHandler,
            MaxReceiveMessageSize = null,
        });
        var raw = new V1.Attention.AttentionClient(channel);
        const int batch = 16, tokens = 4096;
        var tensor = new V1.Tensor { Dtype = V1.DType.F32, Data = Google.Protobuf.ByteString.CopyFrom(new byte[batch * tokens * 64 * sizeof(float)]) };
        tensor.Shape.Add([batch, tokens, 64]);
        var request = new V1.ForwardRequest { Model = Model, Input = tensor, Causal = true };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<RpcException>(() => raw.ForwardAsync(request,
            new Metadata { { "authorization", "Bearer " + SecuredSilo.Key } }, DateTime.UtcNow.AddMilliseconds(150)).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the call took {clock.Elapsed.TotalMilliseconds:F0} ms");

        await using var keyed = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(SecuredSilo.Key));
        await ApiKeyTests.AssertForwardCorrect(keyed, Model);
    }

    [Fact]
    public async Task Forwards_beyond_the_concurrency_limit_are_RESOURCE_EXHAUSTED_and_the_rest_correct()
    {
        await using var keyed = new GrpcAttentionClient(silo.GrpcAddress, silo.ClientOptions(SecuredSilo.Key));
        int ok = 0, exhausted = 0;
        // Many more calls at once than the silo's MaxConcurrentForwards (2), each long enough (T = 1024, batch 8:
        // tens of milliseconds) that they overlap: the extra ones are refused at once.
        const int batch = 8, tokens = 1024;
        var input = new AttentionInput
        {
            Input = new FloatTensor(new float[batch * tokens * Golden.Spec.ModelDim], batch, tokens, Golden.Spec.ModelDim),
            Causal = true,
        };
        await Task.WhenAll(Enumerable.Range(0, 32).Select(async _ =>
        {
            try
            {
                await keyed.ForwardAsync(Model, input);
                Interlocked.Increment(ref ok);
            }
            catch (HeadwiseException e) when (e.Code == ErrorCode.ResourceExhausted)
            {
                Assert.Contains("Headwise__MaxConcurrentForwards", e.Message);
                Interlocked.Increment(ref exhausted);
            }
        }));
        Assert.True(ok >= SecuredSilo.MaxConcurrentForwards, $"{ok} forwards succeeded");
        Assert.True(exhausted > 0, "no forward was refused");
        await ApiKeyTests.AssertForwardCorrect(keyed, Model); // the slots were all given back
    }
}

/// <summary>The gate itself, with calls held open: exactly MaxConcurrentForwards pass, the next is refused at once.</summary>
public sealed class ForwardGateTests
{
    [Fact]
    public async Task The_gate_lets_the_limit_through_refuses_one_more_and_frees_slots_when_calls_end()
    {
        var gate = new Silo.Gateway.ForwardGate(Microsoft.Extensions.Options.Options.Create(new Silo.Gateway.GatewayOptions { MaxConcurrentForwards = 2 }));
        var release = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var forward = new FakeContext("/headwise.v1.Attention/Forward");
        Task<string> Held() => gate.UnaryServerHandler<string, string>("x", forward, (_, _) => release.Task);

        var first = Held();
        var second = Held();
        var refused = await Assert.ThrowsAsync<RpcException>(Held);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("Headwise__MaxConcurrentForwards", refused.Status.Detail);
        // Other methods are not counted.
        Assert.Equal("7", await gate.UnaryServerHandler<string, string>("x", new FakeContext("/headwise.v1.Attention/ListModels"), (_, _) => Task.FromResult("7")));

        release.SetResult("1");
        Assert.Equal(["1", "1"], await Task.WhenAll(first, second));
        Assert.Equal("3", await gate.UnaryServerHandler<string, string>("x", forward, (_, _) => Task.FromResult("3")));
        // A failed call gives its slot back too.
        for (int i = 0; i < 3; i++)
            await Assert.ThrowsAsync<InvalidOperationException>(() => gate.UnaryServerHandler<string, string>("x", forward, (_, _) => throw new InvalidOperationException()));
        Assert.Equal("4", await gate.UnaryServerHandler<string, string>("x", forward, (_, _) => Task.FromResult("4")));
    }

    [Fact]
    public async Task Decode_steps_have_their_own_limit()
    {
        var gate = new Silo.Gateway.ForwardGate(Microsoft.Extensions.Options.Options.Create(
            new Silo.Gateway.GatewayOptions { MaxConcurrentForwards = 1, MaxConcurrentDecodes = 3 }));
        var release = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var decode = new FakeContext("/headwise.v1.Attention/Decode");
        Task<string> Held(ServerCallContext context) => gate.UnaryServerHandler<string, string>("x", context, (_, _) => release.Task);

        var held = new[] { Held(decode), Held(decode), Held(decode) };
        var refused = await Assert.ThrowsAsync<RpcException>(() => Held(decode));
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("3 decode steps (Headwise__MaxConcurrentDecodes)", refused.Status.Detail);
        // Decode steps do not take forward slots: one forward still gets in, and a second is refused by its own limit.
        var forward = Held(new FakeContext("/headwise.v1.Attention/Forward"));
        var forwardRefused = await Assert.ThrowsAsync<RpcException>(() => Held(new FakeContext("/headwise.v1.Attention/Forward")));
        Assert.Contains("Headwise__MaxConcurrentForwards", forwardRefused.Status.Detail);

        release.SetResult("1");
        Assert.Equal(["1", "1", "1", "1"], await Task.WhenAll([.. held, forward]));
        Assert.Equal("2", await gate.UnaryServerHandler<string, string>("x", decode, (_, _) => Task.FromResult("2")));
    }

    [Fact]
    public async Task A_decode_stream_step_takes_a_decode_slot_while_it_runs()
    {
        var gate = new Silo.Gateway.ForwardGate(Microsoft.Extensions.Options.Options.Create(
            new Silo.Gateway.GatewayOptions { MaxConcurrentForwards = 1, MaxConcurrentDecodes = 2 }));
        var release = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var decode = new FakeContext("/headwise.v1.Attention/Decode");
        var unary = gate.UnaryServerHandler<string, string>("x", decode, (_, _) => release.Task);
        var step = gate.EnterDecodeStep("/headwise.v1.Attention/DecodeStream");
        // Two steps run (one unary, one streamed): a third of either kind is refused, naming the call that was refused.
        var refused = Assert.Throws<RpcException>(() => gate.EnterDecodeStep("/headwise.v1.Attention/DecodeStream"));
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.StartsWith("decodestream: this silo already runs 2 decode steps (Headwise__MaxConcurrentDecodes)", refused.Status.Detail);
        await Assert.ThrowsAsync<RpcException>(() => gate.UnaryServerHandler<string, string>("x", decode, (_, _) => Task.FromResult("no")));
        // The streamed step's end gives its slot back.
        step.Dispose();
        using (gate.EnterDecodeStep("/headwise.v1.Attention/DecodeStream"))
        {
        }
        release.SetResult("1");
        Assert.Equal("1", await unary);
    }

    private sealed class FakeContext(string method) : ServerCallContext
    {
        protected override string MethodCore => method;
        protected override string HostCore => "127.0.0.1";
        protected override string PeerCore => "ipv4:127.0.0.1:1";
        protected override DateTime DeadlineCore => DateTime.MaxValue;
        protected override Metadata RequestHeadersCore => [];
        protected override CancellationToken CancellationTokenCore => CancellationToken.None;
        protected override Metadata ResponseTrailersCore => [];
        protected override Status StatusCore { get; set; }
        protected override WriteOptions? WriteOptionsCore { get; set; }
        protected override AuthContext AuthContextCore => new(null, []);
        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();
        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
