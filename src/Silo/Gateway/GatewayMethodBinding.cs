using Grpc.AspNetCore.Server.Model;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Lets <see cref="AttentionMethodProvider"/> bind the gateway's methods in place of Grpc.AspNetCore's own provider, which
/// still binds every other service (health, reflection). Both binding one service would map each of its routes twice,
/// and a request matching two endpoints fails; the library's provider is an open generic registered for every service,
/// so it is wrapped to pass over the gateway.
/// </summary>
internal static class GatewayMethodBinding
{
    /// <summary>Call after every AddGrpc* registration: each adds the library's provider again if it is missing.</summary>
    public static IServiceCollection BindGatewayMethods(this IServiceCollection services)
    {
        var library = services.Single(d => d.ServiceType == typeof(IServiceMethodProvider<>) && d.ImplementationType is { Name: "BinderServiceMethodProvider`1" });
        services.Remove(library);
        services.AddSingleton(new LibraryMethodProvider(library.ImplementationType!));
        services.TryAddEnumerable(ServiceDescriptor.Singleton(typeof(IServiceMethodProvider<>), typeof(AllButGateway<>)));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IServiceMethodProvider<AttentionGateway>, AttentionMethodProvider>());
        return services;
    }

    /// <summary>The library's provider type, open generic.</summary>
    private sealed record LibraryMethodProvider(Type OpenType);

    private sealed class AllButGateway<TService>(IServiceProvider services, LibraryMethodProvider library) : IServiceMethodProvider<TService>
        where TService : class
    {
        private readonly IServiceMethodProvider<TService>? _library = typeof(TService) == typeof(AttentionGateway)
            ? null
            : (IServiceMethodProvider<TService>)ActivatorUtilities.CreateInstance(services, library.OpenType.MakeGenericType(typeof(TService)));

        public void OnServiceMethodDiscovery(ServiceMethodProviderContext<TService> context) => _library?.OnServiceMethodDiscovery(context);
    }
}
