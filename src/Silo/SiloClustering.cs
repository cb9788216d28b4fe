using System.Net;
using Headwise.Grains;
using Orleans.Configuration;
using Orleans.Storage;
using StackExchange.Redis;

namespace Headwise.Silo;

/// <summary>
/// The one place that decides how a silo joins its cluster and where grain state lives: localhost clustering
/// and memory storage for the embedded default, Redis for both in cluster mode, Kubernetes hosting in a pod.
/// </summary>
public static class SiloClustering
{
    public static void Configure(ISiloBuilder silo, SiloOptions options)
    {
        // Localhost clusters keep Orleans' own default ids, so a plain UseLocalhostClustering() client connects.
        string defaultId = options.Clustering == ClusteringKind.Localhost ? "dev" : "headwise";
        string clusterId = FirstSet(options.ClusterId, Environment.GetEnvironmentVariable("ORLEANS_CLUSTER_ID"), defaultId);
        string serviceId = FirstSet(options.ServiceId, Environment.GetEnvironmentVariable("ORLEANS_SERVICE_ID"), defaultId);

        if (options.Clustering == ClusteringKind.Localhost)
        {
            var primary = options.PrimarySiloPort == 0 ? null : new IPEndPoint(IPAddress.Loopback, options.PrimarySiloPort);
            silo.UseLocalhostClustering(options.SiloPort, options.GatewayPort, primary, serviceId, clusterId);
        }
        else
        {
            silo.Configure<ClusterOptions>(cluster =>
            {
                cluster.ClusterId = clusterId;
                cluster.ServiceId = serviceId;
            });
            // The Orleans ports listen on the advertised address only (the pod IP in Kubernetes), not on every interface:
            // they are the address other silos and clients dial, and nothing else should reach them.
            silo.ConfigureEndpoints(AdvertisedAddress(options), options.SiloPort, options.GatewayPort, listenOnAnyHostAddress: false);
            silo.UseRedisClustering(redis => redis.ConfigurationOptions = ConfigurationOptions.Parse(options.Redis));
            // In a pod, Kubernetes hosting takes the cluster identity from the pod and evicts silos of deleted pods.
            if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST")))
                silo.UseKubernetesHosting(kubernetes => kubernetes.Configure(k => k.DeleteDefunctSiloPods = options.DeleteDefunctSiloPods));
        }

        MembershipTuning.Configure(silo);

        if (options.Storage == StorageKind.Memory)
        {
            // Orleans' binary format here too: the default JSON storage serializer wrote every byte block (weights, a
            // decode step's stored inputs) as base64 through Newtonsoft, and read it back the same way.
            silo.AddMemoryGrainStorage(StorageNames.Weights, storage => storage.Configure<IServiceProvider>((memory, services) =>
                memory.GrainStorageSerializer = new ExactGrainStorageSerializer(services.GetRequiredService<Orleans.Serialization.Serializer>())));
        }
        else
        {
            silo.AddRedisGrainStorage(StorageNames.Weights, storage => storage.Configure<IServiceProvider>((redis, services) =>
            {
                redis.ConfigurationOptions = ConfigurationOptions.Parse(options.Redis);
                // Weights are byte blocks: Orleans' binary format stores them as they are, JSON would inflate them by a third.
                redis.GrainStorageSerializer = new ExactGrainStorageSerializer(services.GetRequiredService<Orleans.Serialization.Serializer>());
                redis.DeleteStateOnClear = true;
            }));
        }
    }

    public static IPAddress AdvertisedAddress(SiloOptions options) =>
        IPAddress.Parse(FirstSet(options.AdvertisedAddress, Environment.GetEnvironmentVariable("POD_IP"), "127.0.0.1"));

    private static string FirstSet(params string?[] values) => values.First(v => !string.IsNullOrWhiteSpace(v))!;
}
