using Headwise.Grains.Placement;
using Headwise.Kernels;
using Microsoft.Extensions.DependencyInjection;

namespace Headwise.Grains;

/// <summary>Everything a silo needs to host Headwise's grains, except the choice of storage and clustering.</summary>
public static class HeadwiseSiloBuilderExtensions
{
    public static ISiloBuilder AddHeadwiseGrains(this ISiloBuilder silo, KernelKind kernel)
    {
        silo.Services.AddSingleton<IHeadKernel>(HeadKernels.Create(kernel));
        silo.Services.AddSingleton<SiloIdentity>();
        silo.Services.AddOptions<ForwardLimits>();
        silo.Services.AddPlacementDirector<SpreadHeadsStrategy, SpreadHeadsDirector>();
        silo.AddActivityPropagation();
        return silo;
    }
}
