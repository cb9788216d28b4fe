using Headwise.Contracts;
using Microsoft.Extensions.Options;

namespace Headwise.Silo;

/// <summary>
/// Loads the model "demo" (GPT-2-small shape, weights from a fixed seed) once the silo is up, so a newcomer
/// can run a forward pass without uploading anything, then reports the silo ready and where it listens.
/// </summary>
public sealed class DemoModelLoader(
    IGrainFactory grains,
    IOptions<SiloOptions> options,
    SiloReadiness readiness,
    IHostApplicationLifetime lifetime,
    ILogger<DemoModelLoader> logger) : BackgroundService
{
    public const string Name = "demo";
    public const int Seed = 20261123;

    public static readonly AttentionSpec Spec = new() { ModelDim = 768, HeadCount = 12, LayerCount = 1, Bias = true };

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await WaitForStartAsync(stoppingToken);
        var settings = options.Value;
        if (settings.DemoModel)
            await LoadDemoAsync(stoppingToken);
        readiness.MarkReady();
        logger.LogInformation(
            "Headwise silo ready: gRPC http://{Address}:{GrpcPort}, web http://{Address}:{WebPort} (/healthz), Orleans silo port {SiloPort}, gateway port {GatewayPort}, kernel {Kernel}, demo model {Demo}",
            settings.ListenAddress, settings.GrpcPort, settings.ListenAddress, settings.WebPort, settings.SiloPort,
            settings.GatewayPort, settings.Kernel, settings.DemoModel ? $"'{Name}'" : "off");
    }

    private async Task LoadDemoAsync(CancellationToken cancellationToken)
    {
        var catalog = grains.GetGrain<IModelCatalogGrain>(GrainKeys.Catalog);
        var existing = await catalog.List();
        // Durable storage may already hold it (a restarted cluster): keep what is there.
        if (existing.Any(m => m.Name == Name && m.Ready)) return;
        if (existing.All(m => m.Name != Name))
        {
            try
            {
                await catalog.Create(Name, Spec);
            }
            catch (HeadwiseException e) when (e.Code == ErrorCode.AlreadyExists)
            {
                // Another silo of the cluster created it a moment ago; loading the same seeded weights again is harmless.
            }
        }
        var spec = Spec.Resolve();
        await WeightUpload.StoreAsync(grains, Name, SeededWeights.Create(spec, Seed), cancellationToken);
    }

    private Task WaitForStartAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        return started.Task.WaitAsync(stoppingToken);
    }
}
