using System.Diagnostics;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Reflection.V1;
using Headwise.TestSupport;
using Headwise.V1;

namespace Headwise.SystemTests;

/// <summary>
/// The gRPC services every gRPC tool expects, called with their own generated clients as grpcurl, a Kubernetes gRPC
/// probe or a load balancer would: grpc.health.v1 follows the silo's readiness (SERVING once ready, NOT_SERVING while
/// it drains) and needs no key; reflection lists headwise.v1.Attention and serves its file, behind the key when one is set.
/// The /healthz probes split into live, startup and ready, with /healthz answering as ready does.
/// </summary>
public sealed class StandardServicesTests
{
    private const string Key = "standard-services-test-key";
    private const string Gateway = "headwise.v1.Attention";

    [Fact]
    public async Task Health_is_SERVING_without_a_key_and_reflection_describes_the_gateway_with_it()
    {
        await using var silo = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string> { ["Headwise__ApiKey"] = Key });
        await silo.WaitUntilHealthyAsync();
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);

        var health = new Health.HealthClient(channel);
        foreach (var service in new[] { "", Gateway })
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving,
                (await health.CheckAsync(new HealthCheckRequest { Service = service })).Status);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync(new HealthCheckRequest { Service = "headwise.v1.Nothing" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);

        foreach (var path in new[] { "/healthz", "/healthz/live", "/healthz/ready", "/healthz/startup" })
            Assert.Equal((200, "ok"), await GetAsync(silo, path));

        var refused = await Assert.ThrowsAsync<RpcException>(() => ListServicesAsync(channel, new Metadata()));
        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);

        var keyed = new Metadata { { "authorization", $"Bearer {Key}" } };
        Assert.Contains(Gateway, await ListServicesAsync(channel, keyed));
        Assert.Contains("grpc.health.v1.Health", await ListServicesAsync(channel, keyed));
        var file = await FileContainingAsync(channel, keyed, Gateway);
        var served = file.Service.Single(s => $"{file.Package}.{s.Name}" == Gateway);
        // Every rpc of the contract this test was compiled against, Rebalance and the session calls included.
        Assert.Equal(Attention.Descriptor.Methods.Select(m => m.Name).Order(), served.Method.Select(m => m.Name).Order());
        Assert.Contains("Rebalance", served.Method.Select(m => m.Name));
    }

    [Fact]
    public async Task A_draining_silo_is_NOT_SERVING_and_not_ready_but_live_and_started()
    {
        // Listening on every interface: reflection is off unless switched on.
        await using var silo = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string>
        {
            ["Headwise__DrainSeconds"] = "8",
            ["Headwise__ListenAddress"] = "0.0.0.0",
            ["Headwise__HealthPublishSeconds"] = "1",
        });
        // Asked every 10 ms, so the watch below opens just after the silo turned ready: it once got SERVING twice there,
        // fresh and then again when the health publisher's cache caught up on its next tick.
        await silo.WaitUntilHealthyAsync(pollEvery: TimeSpan.FromMilliseconds(10));
        using var channel = GrpcChannel.ForAddress(silo.GrpcAddress);
        var health = new Health.HealthClient(channel);
        using var watch = health.Watch(new HealthCheckRequest { Service = Gateway });
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, watch.ResponseStream.Current.Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = Gateway })).Status);
        var noReflection = await Assert.ThrowsAsync<RpcException>(() => ListServicesAsync(channel, new Metadata()));
        Assert.Equal(StatusCode.Unimplemented, noReflection.StatusCode);

        var next = watch.ResponseStream.MoveNext();
        await Task.WhenAny(next, Task.Delay(TimeSpan.FromSeconds(1.5)));
        Assert.False(next.IsCompleted, "the watch sent a second message while nothing changed");

        var clock = Stopwatch.StartNew();
        using (var term = Process.Start("kill", ["-TERM", silo.ProcessId.ToString()])) await term.WaitForExitAsync();

        // The drain lasts 8 s: each answer below must come inside it, while the gateway still serves.
        foreach (var service in new[] { "", Gateway })
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing,
                await StatusOnceChangedAsync(health, service, HealthCheckResponse.Types.ServingStatus.Serving));
        Assert.Equal((503, "draining"), await GetAsync(silo, "/healthz/ready"));
        Assert.Equal((503, "draining"), await GetAsync(silo, "/healthz"));
        Assert.Equal((200, "ok"), await GetAsync(silo, "/healthz/live"));
        Assert.Equal((200, "ok"), await GetAsync(silo, "/healthz/startup"));
        Assert.True(await next.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, watch.ResponseStream.Current.Status);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"the checks took {clock.Elapsed.TotalSeconds:F1} s, past the drain");

        Assert.Equal(0, await silo.WaitForExitAsync(TimeSpan.FromSeconds(60)));
    }

    // The signal and the readiness flag are not one instant: ask until the answer moves (a few hundred ms at most).
    private static async Task<HealthCheckResponse.Types.ServingStatus> StatusOnceChangedAsync(
        Health.HealthClient health, string service, HealthCheckResponse.Types.ServingStatus from)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(5); ; await Task.Delay(50))
        {
            var status = (await health.CheckAsync(new HealthCheckRequest { Service = service })).Status;
            if (status != from || DateTime.UtcNow > deadline) return status;
        }
    }

    private static async Task<(int, string)> GetAsync(SiloProcess silo, string path)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        using var response = await http.GetAsync(new Uri(silo.WebAddress, path));
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static async Task<List<string>> ListServicesAsync(GrpcChannel channel, Metadata headers)
    {
        var response = await AskAsync(channel, headers, new ServerReflectionRequest { ListServices = "" });
        return response.ListServicesResponse.Service.Select(s => s.Name).ToList();
    }

    private static async Task<FileDescriptorProto> FileContainingAsync(GrpcChannel channel, Metadata headers, string symbol)
    {
        var response = await AskAsync(channel, headers, new ServerReflectionRequest { FileContainingSymbol = symbol });
        Assert.Equal(ServerReflectionResponse.MessageResponseOneofCase.FileDescriptorResponse, response.MessageResponseCase);
        return response.FileDescriptorResponse.FileDescriptorProto
            .Select(bytes => FileDescriptorProto.Parser.ParseFrom(bytes))
            .Single(file => file.Service.Any(s => $"{file.Package}.{s.Name}" == symbol));
    }

    private static async Task<ServerReflectionResponse> AskAsync(GrpcChannel channel, Metadata headers, ServerReflectionRequest request)
    {
        using var call = new ServerReflection.ServerReflectionClient(channel).ServerReflectionInfo(headers);
        await call.RequestStream.WriteAsync(request);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());
        return call.ResponseStream.Current;
    }
}
