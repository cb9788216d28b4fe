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
}
