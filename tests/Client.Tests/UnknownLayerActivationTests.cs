using Grpc.Core;
using Grpc.Net.Client;
using Headwise.TestSupport;
using Headwise.V1;

namespace Headwise.Client.Tests;

/// <summary>
/// A Forward or OpenSession naming a layer or model that does not exist is answered NOT_FOUND by the gateway from its
/// catalog listing: 100 such calls activate no grain but the catalog (counted by Orleans' management grain), where each
/// used to activate a coordinator and a layer grain for its made-up key.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class UnknownLayerActivationTests(SiloFixture silo)
{
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-tiny");

    private async Task<int> HeadwiseActivations()
    {
        var statistics = await silo.ClusterClient.GetGrain<IManagementGrain>(0).GetSimpleGrainStatistics();
        // Every Headwise grain but the catalog, the one grain these calls are meant to ask.
        return statistics.Where(s => s.GrainType.Contains("Headwise", StringComparison.Ordinal) && !s.GrainType.Contains("ModelCatalogGrain", StringComparison.Ordinal))
            .Sum(s => s.ActivationCount);
    }

    [Fact]
    public async Task Calls_to_unknown_layers_and_models_activate_no_grain()
    {
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        var client = new Attention.AttentionClient(channel);
        const string model = "activation-probe";

        // The count sees activations: creating a model activates its layer grains.
        int beforeCreate = await HeadwiseActivations();
        await client.CreateModelAsync(new CreateModelRequest { Name = model, Spec = new AttentionSpec { ModelDim = 64, HeadCount = 4, LayerCount = 2 } });
        int before = await HeadwiseActivations();
        Assert.True(before > beforeCreate, $"creating a model went from {beforeCreate} to {before} activations");

        var input = new Tensor { Dtype = DType.F32, Data = Google.Protobuf.ByteString.CopyFrom(Contracts.FloatBytes.ToBytes(Golden.Input)) };
        input.Shape.Add([Golden.Batch, Golden.Tokens, 64]);
        for (int i = 0; i < 100; i++)
        {
            var call = (i % 4) switch
            {
                0 => client.ForwardAsync(new ForwardRequest { Model = model, Layer = 2 + i, Input = input }).ResponseAsync,
                1 => client.ForwardAsync(new ForwardRequest { Model = $"no-such-model-{i}", Layer = 0, Input = input }).ResponseAsync,
                2 => client.OpenSessionAsync(new OpenSessionRequest { Model = model, Layer = 1000 + i }).ResponseAsync,
                _ => (Task)client.ForwardAsync(new ForwardRequest { Model = model, Layer = -i, Input = input }).ResponseAsync,
            };
            var error = await Assert.ThrowsAsync<RpcException>(() => call);
            Assert.Equal(StatusCode.NotFound, error.StatusCode);
        }

        int after = await HeadwiseActivations();
        Assert.True(after <= before, $"100 calls to unknown layers and models went from {before} to {after} activations");
        await client.DeleteModelAsync(new DeleteModelRequest { Name = model });
    }

    [Fact]
    public async Task A_model_deleted_after_the_gateway_saw_it_stops_reaching_grains()
    {
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        var client = new Attention.AttentionClient(channel);
        const string model = "activation-deleted";
        await client.CreateModelAsync(new CreateModelRequest { Name = model, Spec = new AttentionSpec { ModelDim = 64, HeadCount = 4 } });
        var input = new Tensor { Dtype = DType.F32, Data = Google.Protobuf.ByteString.CopyFrom(Contracts.FloatBytes.ToBytes(Golden.Input)) };
        input.Shape.Add([Golden.Batch, Golden.Tokens, 64]);
        var request = new ForwardRequest { Model = model, Input = input };

        // The gateway learns the model (the pass itself fails: no weights yet), then the model goes.
        var noWeights = await Assert.ThrowsAsync<RpcException>(() => client.ForwardAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, noWeights.StatusCode);
        await client.DeleteModelAsync(new DeleteModelRequest { Name = model });
        // The first call after the delete still reaches the layer, which says NOT_FOUND; the gateway forgets the model.
        var first = await Assert.ThrowsAsync<RpcException>(() => client.ForwardAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, first.StatusCode);

        // Deactivate what sat idle for a second (the deleted layer's grain among them), so that reaching it would show.
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        await silo.ClusterClient.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.FromSeconds(1));
        int before = await HeadwiseActivations();
        for (int i = 0; i < 50; i++)
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => client.ForwardAsync(request).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, error.StatusCode);
            Assert.Contains($"model '{model}' not found", error.Status.Detail);
        }
        int after = await HeadwiseActivations();
        Assert.True(after <= before, $"50 calls to a deleted model went from {before} to {after} activations");
    }

    [Fact]
    public async Task Decode_streams_and_close_with_made_up_session_ids_activate_no_grain_and_a_real_session_still_decodes()
    {
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        var client = new Attention.AttentionClient(channel);
        var row = new Tensor { Dtype = DType.F32, Data = Google.Protobuf.ByteString.CopyFrom(new byte[768 * sizeof(float)]) };
        row.Shape.Add([1, 1, 768]);
        // A real session, opened first, so the count below would see its grain re-activated if the check broke it.
        var opened = await client.OpenSessionAsync(new OpenSessionRequest { Model = "demo" });
        await silo.ClusterClient.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.FromSeconds(1));
        int before = await SessionActivations();

        for (int i = 0; i < 100; i++)
        {
            string madeUp = Guid.NewGuid().ToString("N");
            var call = (i % 3) switch
            {
                0 => client.DecodeAsync(new DecodeRequest { Session = madeUp, Input = row }).ResponseAsync,
                1 => (Task)client.CloseSessionAsync(new CloseSessionRequest { Session = madeUp }).ResponseAsync,
                _ => StreamStep(client, madeUp, row),
            };
            var error = await Assert.ThrowsAsync<RpcException>(() => call);
            Assert.Equal(StatusCode.NotFound, error.StatusCode);
            Assert.Contains("not found", error.Status.Detail);
        }
        int after = await SessionActivations();
        Assert.True(after <= before, $"100 calls with made-up session ids went from {before} to {after} session activations");

        var step = await client.DecodeAsync(new DecodeRequest { Session = opened.Session, Input = row });
        Assert.Equal(1, step.Position);
        await client.CloseSessionAsync(new CloseSessionRequest { Session = opened.Session });
        var closed = await Assert.ThrowsAsync<RpcException>(() => client.DecodeAsync(new DecodeRequest { Session = opened.Session, Input = row }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, closed.StatusCode);
    }

    /// <summary>A DecodeStream whose first message is a step of <paramref name="session"/>; throws the stream's status.</summary>
    private static async Task StreamStep(Attention.AttentionClient client, string session, Tensor row)
    {
        using var stream = client.DecodeStream();
        await stream.RequestStream.WriteAsync(new DecodeStreamRequest { Session = session, Input = row });
        await stream.ResponseStream.MoveNext(CancellationToken.None);
    }

    private async Task<int> SessionActivations()
    {
        var statistics = await silo.ClusterClient.GetGrain<IManagementGrain>(0).GetSimpleGrainStatistics();
        return statistics.Where(s => s.GrainType.Contains("DecodeSessionGrain", StringComparison.Ordinal)).Sum(s => s.ActivationCount);
    }
}
