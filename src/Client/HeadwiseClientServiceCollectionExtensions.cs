using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Headwise.Client;

/// <summary>Registers the gRPC transport of <see cref="IAttentionClient"/> for dependency injection, one client per container.</summary>
public static class HeadwiseClientServiceCollectionExtensions
{
    /// <summary>
    /// Registers the gRPC transport for the gateway at <paramref name="address"/>
    /// (default <see cref="GrpcAttentionClient.DefaultAddress"/>) with default options.
    /// </summary>
    public static IServiceCollection AddHeadwiseClient(this IServiceCollection services, Uri? address = null) =>
        services.AddHeadwiseClient(options => options.Address = address ?? options.Address);

    /// <summary>Registers the gRPC transport with the options <paramref name="configure"/> sets (address, API key, deadline, retries, handler).</summary>
    public static IServiceCollection AddHeadwiseClient(this IServiceCollection services, Action<GrpcAttentionClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<GrpcAttentionClientOptions>().Configure(configure);
        return services.AddClient();
    }

    /// <summary>
    /// Registers the gRPC transport with options bound from <paramref name="configuration"/>, e.g.
    /// <c>configuration.GetSection("Headwise")</c> holding <c>Address</c>, <c>ApiKey</c>, <c>DefaultDeadline</c>,
    /// <c>MaxAttempts</c>, <c>InitialBackoff</c> and <c>MaxBackoff</c>; keys it lacks keep their defaults.
    /// </summary>
    public static IServiceCollection AddHeadwiseClient(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<GrpcAttentionClientOptions>().Bind(configuration);
        return services.AddClient();
    }

    private static IServiceCollection AddClient(this IServiceCollection services) =>
        services.AddSingleton<IAttentionClient>(provider =>
        {
            var options = provider.GetRequiredService<IOptions<GrpcAttentionClientOptions>>().Value;
            return new GrpcAttentionClient(options.Address ?? GrpcAttentionClient.DefaultAddress, options);
        });
}
