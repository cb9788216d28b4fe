using Microsoft.Extensions.DependencyInjection;

namespace Headwise.Client;

/// <summary>Registers an <see cref="IAttentionClient"/> for dependency injection.</summary>
public static class HeadwiseClientServiceCollectionExtensions
{
    /// <summary>
    /// Registers the gRPC transport for the gateway at <paramref name="address"/>
    /// (default <see cref="GrpcAttentionClient.DefaultAddress"/>).
    /// </summary>
    public static IServiceCollection AddHeadwiseClient(this IServiceCollection services, Uri? address = null) =>
        services.AddSingleton<IAttentionClient>(_ => new GrpcAttentionClient(address ?? GrpcAttentionClient.DefaultAddress));

    /// <summary>
    /// Registers the Orleans transport; the application must also configure an Orleans client
    /// (<c>UseOrleansClient</c>) so that an <see cref="IClusterClient"/> is available.
    /// </summary>
    public static IServiceCollection AddHeadwiseOrleansClient(this IServiceCollection services) =>
        services.AddSingleton<IAttentionClient>(sp => new OrleansAttentionClient(sp.GetRequiredService<IClusterClient>()));
}
