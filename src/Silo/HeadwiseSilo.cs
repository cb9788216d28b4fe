using System.Net;
using Headwise.Contracts;
using Headwise.Grains;
using Headwise.Grains.Decode;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Headwise.Kernels;
using Headwise.Silo.Dashboard;
using Headwise.Silo.Gateway;
using Headwise.Silo.Health;
using Headwise.Silo.Telemetry;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Headwise.Silo;

/// <summary>
/// Builds a Headwise silo: Orleans with the head, layer and catalog grains, the gRPC gateway (with grpc.health.v1 and,
/// on loopback or when switched on, reflection) on an HTTP/2-only port, the /healthz probes on the web port, and tracing. With no configuration it is the embedded default: one silo,
/// localhost clustering, in-memory storage, the demo model.
/// </summary>
public static class HeadwiseSilo
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        // appsettings.json beside the binary, wherever the process was started from.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        configure?.Invoke(builder);
        // Memory limits nobody set follow the container's memory or the GC heap limit (explicit settings win).
        MemoryDefaults.For(ContainerMemory.Budget()).AddTo(builder.Configuration);

        var options = builder.Configuration.GetSection(SiloOptions.Section).Get<SiloOptions>() ?? new SiloOptions();
        var limits = builder.Configuration.GetSection(SiloOptions.Section).Get<ForwardLimits>() ?? new ForwardLimits();
        var gateway = builder.Configuration.GetSection(SiloOptions.Section).Get<GatewayOptions>() ?? new GatewayOptions();
        var models = builder.Configuration.GetSection(SiloOptions.Section).Get<ModelLimits>() ?? new ModelLimits();
        var batching = builder.Configuration.GetSection(SiloOptions.Section).Get<DecodeBatchOptions>() ?? new DecodeBatchOptions();
        var forwardBatching = builder.Configuration.GetSection(SiloOptions.Section).Get<ForwardBatchOptions>() ?? new ForwardBatchOptions();
        var sharedMemory = builder.Configuration.GetSection(SiloOptions.Section).Get<SharedMemoryOptions>() ?? new SharedMemoryOptions();
        var orleansTls = builder.Configuration.GetSection($"{SiloOptions.Section}:{OrleansTlsSettings.Section}").Get<OrleansTlsSettings>()
                         ?? new OrleansTlsSettings();
        var problems = options.Problems().Concat(LimitProblems(limits)).Concat(gateway.Problems()).Concat(models.Problems())
            .Concat(batching.Problems()).Concat(forwardBatching.Problems()).Concat(sharedMemory.Problems()).Concat(orleansTls.Problems()).ToList();
        if (problems.Count > 0)
            throw new InvalidOperationException("Headwise configuration is not usable:\n  " + string.Join("\n  ", problems));

        builder.Services.Configure<SiloOptions>(builder.Configuration.GetSection(SiloOptions.Section));
        builder.Services.Configure<ForwardLimits>(builder.Configuration.GetSection(SiloOptions.Section));
        builder.Services.Configure<ScatterOptions>(builder.Configuration.GetSection(SiloOptions.Section));
        builder.Services.Configure<DecodeBatchOptions>(builder.Configuration.GetSection(SiloOptions.Section));
        builder.Services.Configure<ForwardBatchOptions>(builder.Configuration.GetSection(SiloOptions.Section));
        builder.Services.Configure<WeightUploadOptions>(builder.Configuration.GetSection(SiloOptions.Section));
        builder.Services.Configure<DecodeSessionOptions>(builder.Configuration.GetSection(SiloOptions.Section + ":Sessions"));
        builder.Services.Configure<GatewayOptions>(builder.Configuration.GetSection(SiloOptions.Section));
        builder.Services.Configure<ModelLimits>(builder.Configuration.GetSection(SiloOptions.Section));
        builder.Services.Configure<SharedMemoryOptions>(builder.Configuration.GetSection(SiloOptions.Section));

        var address = IPAddress.Parse(options.ListenAddress);
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>, LargeBlockMemoryPoolFactory>();
        builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = gateway.InlineScheduling);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // Cleartext gRPC needs a port that speaks HTTP/2 only (h2c); the web pages need HTTP/1.1.
            kestrel.Listen(address, options.GrpcPort, listen => GatewayTransport.Configure(listen, gateway));
            kestrel.Listen(address, options.WebPort, listen => listen.Protocols = HttpProtocols.Http1AndHttp2);
            kestrel.Limits.MaxRequestBodySize = null;
            // A forward's X is megabytes: with HTTP/2's default windows (1 MB per connection, 768 KB per stream) the
            // client stops every window for an update from this side, tens of round trips per request on a busy
            // machine. Windows of a whole large request let it stream in one go.
            kestrel.Limits.Http2.InitialConnectionWindowSize = 32 << 20;
            kestrel.Limits.Http2.InitialStreamWindowSize = 16 << 20;
        });

        builder.UseOrleans(silo =>
        {
            SiloClustering.Configure(silo, options);
            SiloTls.Configure(silo, orleansTls);
            silo.AddHeadwiseGrains(options.Kernel, options.Speed,
                new IPEndPoint(SiloClustering.AdvertisedAddress(options), options.TensorPort),
                options.TensorChannelSharedMemory ? sharedMemory.SharedMemoryDirectory : null);
        });

        builder.Services.AddSingleton<SiloReadiness>();
        builder.Services.AddHostedService<GatewayDrain>();
        builder.Services.AddSingleton<ApiKeyInterceptor>();
        builder.Services.AddSingleton<ForwardGate>();
        builder.Services.AddSingleton<UploadGate>();
        builder.Services.AddSingleton<ModelLayers>();
        builder.Services.AddSingleton<KnownSessions>();
        builder.Services.AddSingleton<DecodeStreamDrain>();
        builder.Services.AddSingleton<SharedMemoryRegistry>();
        builder.Services.AddHostedService<DemoModelLoader>();
        builder.Services.AddGrpc(grpc =>
        {
            grpc.Interceptors.Add<GatewayErrorInterceptor>();
            grpc.Interceptors.Add<ApiKeyInterceptor>();
            grpc.Interceptors.Add<ForwardGate>();
            // Room for the largest allowed input plus its envelope; the gateway answers RESOURCE_EXHAUSTED with
            // the field's name for anything over Headwise__MaxRequestBytes below this.
            grpc.MaxReceiveMessageSize = (int)Math.Min(int.MaxValue, limits.MaxRequestBytes * 2 + (1 << 20));
            grpc.MaxSendMessageSize = null;
        });

        builder.AddHeadwiseHealth(options, gateway);
        builder.AddHeadwiseTelemetry();
        // Last: the AddGrpc* calls above each register the library's method binding, which this takes over for the gateway.
        builder.Services.BindGatewayMethods();

        var app = builder.Build();
        app.MapGrpcService<AttentionGateway>().RequireHost($"*:{options.GrpcPort}");
        app.MapHeadwiseHealth(options, gateway);
        app.MapHeadwiseDashboard();
        return app;
    }

    private static IEnumerable<string> LimitProblems(ForwardLimits limits)
    {
        if (limits.MaxTokens < 1) yield return $"Headwise__MaxTokens is {limits.MaxTokens}; it must be at least 1.";
        if (limits.MaxBatch < 1) yield return $"Headwise__MaxBatch is {limits.MaxBatch}; it must be at least 1.";
        if (limits.MaxRequestBytes < 1 || limits.MaxRequestBytes > int.MaxValue / 2)
            yield return $"Headwise__MaxRequestBytes is {limits.MaxRequestBytes}; it must be in 1..{int.MaxValue / 2}.";
        // A protobuf message cannot exceed 2 GiB.
        if (limits.PassMemoryBytes < 1) yield return $"Headwise__PassMemoryBytes is {limits.PassMemoryBytes}; it must be at least 1.";
        if (limits.MaxResponseBytes < 1 || limits.MaxResponseBytes > int.MaxValue)
            yield return $"Headwise__MaxResponseBytes is {limits.MaxResponseBytes}; it must be in 1..{int.MaxValue}.";
    }
}
