using System.Diagnostics;
using Grpc.Net.Client;
using Headwise.Client;
using Headwise.Contracts;
using Headwise.TestSupport;
using Headwise.V1;

namespace Headwise.SystemTests;

/// <summary>
/// kill -9 of the silo whose gateway is streaming an upload of different weights, under continuous forwards through the
/// other gateways, three silos on Redis: every forward answers with the old weights (none fails, none is the new or a
/// mix), the killed upload's staged weights are dropped when its lease runs out, and an upload after it switches the
/// model. The killed silo is the one the model catalog lives on, so the catalog, which owns the upload's lease, has to
/// come back elsewhere by itself. The new weights are the old ones with W_O and b_O doubled, so their answer is exactly
/// twice the golden one.
/// </summary>
public sealed class UploadCoordinatorKillTests
{
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-small-shape");

    [Fact]
    public async Task Killing_the_uploading_silo_mid_upload_leaves_the_old_weights_serving_and_nothing_staged()
    {
        await using var redis = await RedisServer.StartAsync();
        var silos = new List<SiloProcess>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var environment = RedisSilos.Environment(redis);
                environment["Headwise__UploadLeaseSeconds"] = "3";
                silos.Add(SiloProcess.Start(BuiltPrograms.SiloDll, environment));
            }
            await Task.WhenAll(silos.Select(silo => silo.WaitUntilHealthyAsync()));
            await using var orleans = await RedisClusterClient.ConnectAsync(redis.ConnectionString);
            await orleans.WaitForActiveSilosAsync(silos.Select(silo => silo.SiloPort).ToArray());
            await using (var admin = new GrpcAttentionClient(silos[0].GrpcAddress))
            {
                await admin.CreateModelAsync("upload-kill", Golden.Spec);
                await admin.UploadWeightsAsync("upload-kill", new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
                await admin.RebalanceAsync("upload-kill");
            }
            Assert.Equal(0, await StagedGroups(orleans));
            // The silo killed is the one the model catalog lives on (the catalog owns the upload leases and has to come
            // back elsewhere by itself), and its gateway carries the upload; the other two carry the forwards.
            var statistics = await orleans.Client.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics();
            string catalogSilo = statistics.Single(g => g.GrainType.Contains("ModelCatalogGrain", StringComparison.Ordinal)).SiloAddress.Endpoint.ToString();
            var catalogHost = silos.Single(silo => $"127.0.0.1:{silo.SiloPort}" == catalogSilo);
            silos.Remove(catalogHost);
            silos.Add(catalogHost);
            float[] old = Golden.Expected("expected.0.causal");
            float[] doubled = old.Select(v => v * 2).ToArray();
            byte[] newWeights = DoubledOutputProjection();

            // Forwards through the two silos that stay, a plain client without retries, until told to stop.
            using var channel0 = GrpcChannel.ForAddress(silos[0].GrpcAddress);
            using var channel1 = GrpcChannel.ForAddress(silos[1].GrpcAddress);
            Attention.AttentionClient[] gateways = [new(channel0), new(channel1)];
            var request = GoldenForwardRequest.For("upload-kill", Golden);
            var answers = new List<string>();
            using var stop = new CancellationTokenSource();
            var forwards = Task.Run(async () =>
            {
                for (int n = 0; !stop.IsCancellationRequested; n++)
                {
                    string verdict;
                    try
                    {
                        var response = await gateways[n % 2].ForwardAsync(request, deadline: DateTime.UtcNow.AddSeconds(15));
                        var y = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(response.Output.Data.Span).ToArray();
                        verdict = Matches(old, y) ? "old" : Matches(doubled, y) ? "new" : "wrong";
                    }
                    catch (Grpc.Core.RpcException e)
                    {
                        verdict = $"failed: {e.StatusCode} {e.Status.Detail}";
                    }
                    lock (answers) answers.Add(verdict);
                    await Task.Delay(50);
                }
            });

            // The upload streams slowly through the third silo's gateway. Its attention tensors come first and 8 MB of
            // padding after, so the layer is staged in its heads while the stream goes on; the silo is killed then.
            var uploader = silos[2];
            var attentionSent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var slow = new SlowStream(newWeights, chunk: 64 << 10, delay: TimeSpan.FromMilliseconds(40), mark: newWeights.Length - Padding,
                onMark: () => attentionSent.TrySetResult());
            await using var doomed = new GrpcAttentionClient(uploader.GrpcAddress);
            var upload = doomed.UploadWeightsAsync("upload-kill", slow, Golden.Layout, Golden.Prefix);
            await attentionSent.Task.WaitAsync(TimeSpan.FromSeconds(60));
            var staging = Stopwatch.StartNew();
            while (await StagedGroups(orleans) <= 0 && staging.Elapsed < TimeSpan.FromSeconds(20)) await Task.Delay(100);
            Assert.True(await StagedGroups(orleans) > 0, "the upload staged nothing before the kill");
            Assert.False(upload.IsCompleted, "the upload ended before the kill");
            uploader.Kill();
            await Assert.ThrowsAnyAsync<Exception>(() => upload);

            // The staged weights go with the upload's lease (3 s) once the catalog's sweep sees it.
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(40) && await StagedGroups(orleans) != 0) await Task.Delay(500);
            Assert.Equal(0, await StagedGroups(orleans));
            await Task.Delay(TimeSpan.FromSeconds(2));
            lock (answers)
            {
                Assert.True(answers.Count >= 10, $"only {answers.Count} forwards");
                Assert.True(answers.All(a => a == "old"), string.Join("; ", answers.Where(a => a != "old").Distinct()));
            }

            // A later upload through a surviving gateway switches the model.
            await using (var admin = new GrpcAttentionClient(silos[0].GrpcAddress))
                await admin.UploadWeightsAsync("upload-kill", new MemoryStream(newWeights), Golden.Layout, Golden.Prefix);
            var after = await gateways[1].ForwardAsync(request);
            Assert.True(Matches(doubled, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(after.Output.Data.Span).ToArray()),
                "the upload after the killed one did not switch the model");
            stop.Cancel();
            await forwards;
        }
        finally
        {
            foreach (var silo in silos)
            {
                await SiloLogs.SaveAsync(silo, "upload-kill");
                await silo.DisposeAsync();
            }
        }
    }

    // Staged groups of the model's heads; −1 while a head is still on the killed silo (not yet declared dead).
    private static async Task<int> StagedGroups(RedisClusterClient orleans)
    {
        int staged = 0;
        try
        {
            for (int group = 0; group < Golden.Spec.HeadCount; group++)
                staged += (await orleans.Client.GetGrain<IHeadGrain>(GrainKeys.Head("upload-kill", 0, group)).GetStaged()).Length;
        }
        catch (Exception e) when (e is OrleansMessageRejectionException or SiloUnavailableException or TimeoutException)
        {
            return -1;
        }
        return staged;
    }

    private const int Padding = 8 << 20;

    // The golden file's attention tensors with c_proj (W_O and b_O) doubled, exact in float32 so Y doubles exactly, then a
    // tensor the upload ignores (safetensors keeps the writer's order of the data).
    private static byte[] DoubledOutputProjection() =>
        SafetensorsWriter.ToBytes(Golden.File.Tensors.Values
            .Where(t => t.Name.StartsWith("h.", StringComparison.Ordinal))
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .Select(t => t.Name.Contains("c_proj", StringComparison.Ordinal)
                ? SafetensorsEntry.F32(t.Name, t.ToFloat32().Select(v => v * 2).ToArray(), t.Shape)
                : new SafetensorsEntry(t.Name, t.DType, t.Shape, t.Data))
            .Append(SafetensorsEntry.F32("zz.padding", new float[Padding / sizeof(float)], Padding / sizeof(float))));

    private static bool Matches(float[] expected, float[] actual)
    {
        try
        {
            Tolerance.AssertClose(expected, actual, "upload-kill");
            return true;
        }
        catch (Xunit.Sdk.XunitException)
        {
            return false;
        }
    }

    /// <summary>Hands out its bytes a chunk at a time with a pause between, and says when <paramref name="mark"/> bytes are out.</summary>
    private sealed class SlowStream(byte[] bytes, int chunk, TimeSpan delay, long mark, Action onMark) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => bytes.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Delay(delay, cancellationToken);
            int n = Math.Min(Math.Min(chunk, buffer.Length), bytes.Length - _position);
            bytes.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            if (_position >= mark) onMark();
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("read asynchronously");
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
