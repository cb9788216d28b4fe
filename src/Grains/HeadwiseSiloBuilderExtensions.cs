using Headwise.Grains.Decode;
using Headwise.Grains.Forward;
using Headwise.Grains.Placement;
using Headwise.Kernels;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Headwise.Grains;

/// <summary>Everything a silo needs to host Headwise's grains, except the choice of storage and clustering.</summary>
public static class HeadwiseSiloBuilderExtensions
{
    /// <param name="speedGflops">The speed to advertise for placement; null measures the kernel at start.</param>
    /// <param name="tensorChannel">Where this silo's tensor channel listens (its advertised address; port 0: any free one); loopback by default.</param>
    /// <param name="tensorSharedMemory">A shared-memory directory (/dev/shm) through which the tensor channel passes
    /// tensors to silos of the same host; null: TCP only.</param>
    public static ISiloBuilder AddHeadwiseGrains(this ISiloBuilder silo, KernelKind kernelKind, double? speedGflops = null,
        System.Net.IPEndPoint? tensorChannel = null, string? tensorSharedMemory = null)
    {
        // Bound now, so its port is in the silo's metadata from the start.
        var buffers = new Forward.TensorBuffers();
        var channel = new Forward.TensorChannel(tensorChannel?.Address ?? System.Net.IPAddress.Loopback, tensorChannel?.Port ?? 0, buffers,
            tensorSharedMemory);
        silo.Services.AddSingleton(buffers);
        silo.Services.AddSingleton(_ => channel); // created by a factory, so the container disposes it with the silo
        var kernel = HeadKernels.Create(kernelKind);
        double speed = speedGflops ?? SiloSpeed.MeasureGflops(kernel);
        silo.Services.AddSingleton(kernel);
        FlatMemoryCopies.Register(silo.Services);
        silo.Services.AddSingleton<SiloIdentity>();
        silo.Services.AddSingleton<CancelledForwards>();
        silo.Services.AddOptions<ForwardLimits>();
        silo.Services.AddOptions<ScatterOptions>();
        silo.Services.AddOptions<DecodeBatchOptions>();
        silo.Services.AddOptions<ForwardBatchOptions>();
        silo.Services.AddOptions<DecodeSessionOptions>();
        silo.Services.AddOptions<WeightUploadOptions>();
        silo.Services.AddSingleton<SessionCaches>();
        silo.Services.AddSingleton<SessionBudget>();
        silo.Services.AddSingleton<OpenSessionCount>();
        silo.Services.AddSingleton<LocalHeads>();
        silo.Services.AddSingleton<SessionProjections>();
        silo.Services.AddSingleton(new SiloSpeedReading(speed));
        silo.Services.AddSingleton(services =>
        {
            var options = services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ScatterOptions>>().Value;
            return new Forward.ComputeScheduler(options.ComputeThreads is > 0 and var threads ? threads : Environment.ProcessorCount,
                options.PinComputeThreads);
        });
        silo.Services.AddSingleton<Forward.StackedOutputRows>();
        silo.Services.AddSingleton<Forward.HeadRescue>();
        silo.Services.AddSingleton<Forward.ForwardBatcher>();
        silo.Services.AddSingleton<Forward.StepBatcher>();
        silo.Services.AddSingleton<Forward.SiloPass>();
        silo.Services.AddSingleton<Forward.LayerFanOut>();
        silo.Services.AddSingleton<Forward.LayerPlans>();
        silo.Services.AddSingleton<Forward.ForwardCoordinator>();
        silo.Services.AddSingleton<Forward.PassMemoryBudget>();
        silo.Services.AddSingleton<Decode.DecodeStepper>();
        silo.Services.AddHostedService<CatalogWake>();
        silo.Services.AddHostedService<Decode.SessionSweeper>();
        silo.Services.AddPlacementDirector<SpreadHeadsStrategy, SpreadHeadsDirector>();
        silo.Services.AddPlacementDirector<SiloBoundStrategy, SiloBoundDirector>();
        // Silos advertise kernel, cores and speed as silo metadata so every placement decision can tell equal silos
        // (equal shares, whatever their start-up probes said) from ones that really differ (HeadAllocation).
        var metadata = HeadAllocation.Metadata(kernel.Name, Environment.ProcessorCount, speed, speedConfigured: speedGflops is not null);
        metadata[Forward.SiloPass.TensorChannelKey] = channel.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (channel.SharedMemoryMarker is { } marker) metadata[Forward.SiloPass.TensorMarkerKey] = marker;
        silo.UseSiloMetadata(metadata);
        silo.AddActivityPropagation();
        return silo;
    }
}
