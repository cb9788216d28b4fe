using Headwise.Client;
using Headwise.Contracts;
using Headwise.Silo;
using Headwise.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace Headwise.Observability.Tests;

/// <summary>
/// Three real silos in this process, each built exactly as `dotnet run --project src/Silo` builds it (gRPC
/// gateway, web port, telemetry, dashboard) on free ports, joined into one localhost cluster. Silo 0's tracer
/// also feeds an InMemory exporter; the three silos share this process, so it receives every silo's spans.
/// </summary>
public sealed class ThreeSiloCluster : IAsyncLifetime
{
    public const int SiloCount = 3;

    private readonly List<WebApplication> _silos = [];
    private int[][] _ports = [];

    /// <summary>Every span of every silo, as the InMemory exporter received it.</summary>
    public SpanLog Spans { get; } = new();

    /// <summary>The OTLP collector silo 2 exports to, configured only through OTEL_* settings.</summary>
    public OtlpReceiver Otlp { get; private set; } = null!;

    public Uri GrpcAddress(int silo) => new($"http://127.0.0.1:{_ports[silo][2]}");
    public Uri WebAddress(int silo) => new($"http://127.0.0.1:{_ports[silo][3]}/");
    public int GatewayPort(int silo) => _ports[silo][1];
    public string SiloName(int silo) => $"127.0.0.1:{_ports[silo][0]}";

    public IGrainFactory Grains => _silos[0].Services.GetRequiredService<IGrainFactory>();

    public async Task InitializeAsync()
    {
        _ports = Enumerable.Range(0, SiloCount).Select(_ => FreePorts.Take(4)).ToArray();
        Otlp = await OtlpReceiver.Start();
        // The first silo must be up before the others join it.
        await StartSilo(0);
        await Task.WhenAll(Enumerable.Range(1, SiloCount - 1).Select(StartSilo));

        var management = Grains.GetGrain<IManagementGrain>(0);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await management.GetHosts(onlyActive: true)).Count < SiloCount)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{SiloCount} silos did not form a cluster within 30 s.");
            await Task.Delay(100);
        }
    }

    private async Task StartSilo(int index)
    {
        var ports = _ports[index];
        string[] args =
        [
            $"--Headwise:SiloPort={ports[0]}", $"--Headwise:GatewayPort={ports[1]}",
            $"--Headwise:GrpcPort={ports[2]}", $"--Headwise:WebPort={ports[3]}",
            $"--Headwise:PrimarySiloPort={(index == 0 ? 0 : _ports[0][0])}",
            "--Headwise:DemoModel=false",
            // The metrics test reads the kernel label; Auto would pick the GPU kernel on a machine with CUDA.
            "--Headwise:Kernel=Simd",
            "--Logging:LogLevel:Default=Warning",
        ];
        if (index == 2)
        {
            // The standard OpenTelemetry settings, as a deployment sets them in the environment; short intervals for the test.
            args = [.. args, $"--OTEL_EXPORTER_OTLP_ENDPOINT={Otlp.Endpoint}", "--OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
                "--OTEL_BSP_SCHEDULE_DELAY=200", "--OTEL_METRIC_EXPORT_INTERVAL=500"];
        }
        var silo = HeadwiseSilo.Build(args, index == 0
            ? builder => builder.Services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(Spans))
            : null);
        lock (_silos) _silos.Add(silo);
        await silo.StartAsync();
        await WaitUntilHealthy(new Uri($"http://127.0.0.1:{ports[3]}/healthz"));
    }

    /// <summary>Creates a model with seeded weights; its head groups spread over the three silos.</summary>
    public async Task CreateModel(string name, AttentionSpec spec)
    {
        await Grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog).Create(name, spec);
        await WeightUpload.StoreAsync(Grains, name, SeededWeights.Create(spec.Resolve(), seed: 7));
    }

    /// <summary>One forward pass of layer 0 through silo <paramref name="silo"/>'s gRPC gateway.</summary>
    public async Task<AttentionOutput> Forward(string model, int modelDim, int tokens, bool attention = false, int silo = 0, int batch = 1)
    {
        await using var client = new GrpcAttentionClient(GrpcAddress(silo));
        var random = new Random(tokens);
        var x = Enumerable.Range(0, batch * tokens * modelDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        return await client.ForwardAsync(model, new AttentionInput
        {
            Input = new FloatTensor(x, batch, tokens, modelDim),
            Causal = true,
            ReturnAttention = attention,
        });
    }

    private static async Task WaitUntilHealthy(Uri healthz)
    {
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if ((await http.GetAsync(healthz)).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"{healthz} did not report healthy within 60 s.");
    }

    public async Task DisposeAsync()
    {
        // Joined silos first, the primary last, so nobody waits on a vanished membership table.
        foreach (var silo in Enumerable.Reverse(_silos))
        {
            await silo.StopAsync();
            await silo.DisposeAsync();
        }
        if (Otlp is not null) await Otlp.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ThreeSiloCluster>
{
    public const string Name = "three silos";
}
