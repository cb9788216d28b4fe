using Microsoft.Extensions.DependencyInjection;

namespace Headwise.Client;

/// <summary>Registers the Orleans transport of <see cref="IAttentionClient"/> for dependency injection.</summary>
public static class HeadwiseOrleansClientServiceCollectionExtensions
{
    /// <summary>
    /// Registers the Orleans transport; the application must also configure an Orleans client
    /// (<c>UseOrleansClient</c>) so that an <see cref="IClusterClient"/> is available.
    /// </summary>
    public static IServiceCollection AddHeadwiseOrleansClient(this IServiceCollection services) =>
        services.AddSingleton<IAttentionClient>(sp => new OrleansAttentionClient(sp.GetRequiredService<IClusterClient>()));
}
