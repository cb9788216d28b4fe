using System.Net;
using Headwise.Contracts;
using Headwise.Kernels;

namespace Headwise.Silo;

/// <summary>
/// Where a silo listens and what it runs, bound once from the "Headwise" section (appsettings.json and
/// Headwise__* environment variables) and validated before anything starts.
/// </summary>
public sealed class SiloOptions
{
    public const string Section = "Headwise";

    /// <summary>Orleans silo-to-silo port.</summary>
    public int SiloPort { get; set; } = 11111;
    /// <summary>Orleans client gateway port.</summary>
    public int GatewayPort { get; set; } = 30000;
    /// <summary>gRPC (HTTP/2 cleartext) port.</summary>
    public int GrpcPort { get; set; } = 5070;
    /// <summary>Web port: the dashboard (/), /api/, /orleans, /metrics and /healthz.</summary>
    public int WebPort { get; set; } = 5080;
    /// <summary>How silos find each other: Localhost (embedded, no services) or Redis.</summary>
    public ClusteringKind Clustering { get; set; } = ClusteringKind.Localhost;
    /// <summary>Where grains persist weights and specs: Memory (lost on restart) or Redis.</summary>
    public StorageKind Storage { get; set; } = StorageKind.Memory;
    /// <summary>StackExchange.Redis connection string, for Redis clustering or storage.</summary>
    public string Redis { get; set; } = "127.0.0.1:6379";
    /// <summary>Orleans cluster id; silos with the same id form one cluster. Falls back to ORLEANS_CLUSTER_ID.</summary>
    public string ClusterId { get; set; } = "";
    /// <summary>Orleans service id; names the stored state. Falls back to ORLEANS_SERVICE_ID.</summary>
    public string ServiceId { get; set; } = "";
    /// <summary>The address other silos and clients reach this silo at; falls back to POD_IP, then 127.0.0.1. The Orleans
    /// silo and gateway ports listen on this address only (ListenAddress is for the gRPC and web ports).</summary>
    public string AdvertisedAddress { get; set; } = "";
    /// <summary>In Kubernetes, let silos delete the pods of silos declared dead (needs the delete/patch RBAC overlay).</summary>
    public bool DeleteDefunctSiloPods { get; set; }
    /// <summary>Silo port of the cluster's first silo when this one joins it on localhost clustering; 0: this silo is the first.</summary>
    public int PrimarySiloPort { get; set; }
    /// <summary>Address the gRPC and web ports bind to (the Orleans ports bind to the advertised address).</summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>Uploads one gateway parses and stages at once (each holds up to a layer's attention weights).</summary>
    public int MaxConcurrentUploads { get; set; } = 2;

    /// <summary>Seconds a stopping silo reports "draining" on /healthz and goes on serving before its gateway stops.</summary>
    public double DrainSeconds { get; set; } = 3;

    /// <summary>Seconds between runs of the health checks behind grpc.health.v1 Watch streams (cluster membership);
    /// the silo's own readiness changes (ready, draining) reach watchers at once whatever this is.</summary>
    public double HealthPublishSeconds { get; set; } = 2;

    /// <summary>The silo-to-silo tensor channel's port on the advertised address (Headwise__TensorPort); 0: any free port,
    /// advertised to the other silos in this silo's metadata.</summary>
    public int TensorPort { get; set; }

    /// <summary>Between silos of one host, tensors go through a file in Headwise__SharedMemoryDirectory instead of
    /// loopback TCP (Headwise__TensorChannelSharedMemory); silos on other hosts, or in containers that do not share
    /// that directory, get TCP either way.</summary>
    public bool TensorChannelSharedMemory { get; set; } = true;
    /// <summary>Load the seeded GPT-2-small-shaped model "demo" at start.</summary>
    public bool DemoModel { get; set; } = true;
    /// <summary>
    /// Which kernel the head grains of this silo run: Auto (the GPU kernel when a CUDA device can be opened,
    /// else SIMD), Simd, Gpu (ILGPU; on a machine without CUDA it runs on ILGPU's slow CPU accelerator) or
    /// Reference (float64 loops, for checking). The kernel's name in each head report says which one ran.
    /// </summary>
    public KernelKind Kernel { get; set; } = KernelKind.Auto;
    /// <summary>GFLOP/s this silo advertises for placement; unset: measured at start.</summary>
    public double? Speed { get; set; }
    /// <summary>Largest weights file one upload may carry.</summary>
    public long MaxUploadBytes { get; set; } = 1L << 30;
    /// <summary>
    /// Largest safetensors JSON header an upload may start with. Checked on the first 8 bytes, so a header of millions
    /// of empty tensors is refused before it is received; real checkpoints' headers are well under 1 MiB.
    /// </summary>
    public long MaxUploadHeaderBytes { get; set; } = 16L << 20;

    /// <summary>Every problem with these settings, each naming its Headwise__ variable; empty when usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        void Port(int value, string name)
        {
            if (value is < 1 or > 65535) problems.Add($"Headwise__{name} is {value}; it must be a port in 1..65535.");
        }
        Port(SiloPort, nameof(SiloPort));
        Port(GatewayPort, nameof(GatewayPort));
        Port(GrpcPort, nameof(GrpcPort));
        Port(WebPort, nameof(WebPort));
        if (PrimarySiloPort != 0) Port(PrimarySiloPort, nameof(PrimarySiloPort));
        int[] ports = [SiloPort, GatewayPort, GrpcPort, WebPort];
        if (ports.Distinct().Count() != ports.Length)
            problems.Add($"Headwise__SiloPort, GatewayPort, GrpcPort and WebPort must differ; got {string.Join(", ", ports)}.");
        if (!string.IsNullOrEmpty(AdvertisedAddress) && !IPAddress.TryParse(AdvertisedAddress, out _))
            problems.Add($"Headwise__AdvertisedAddress is '{AdvertisedAddress}'; it must be an IP address.");
        if (!Enum.IsDefined(Clustering))
            problems.Add($"Headwise__Clustering is '{Clustering}'; use Localhost or Redis.");
        if (!Enum.IsDefined(Storage))
            problems.Add($"Headwise__Storage is '{Storage}'; use Memory or Redis.");
        if ((Clustering == ClusteringKind.Redis || Storage == StorageKind.Redis) && string.IsNullOrWhiteSpace(Redis))
            problems.Add("Headwise__Redis is empty; Redis clustering or storage needs a connection string such as 127.0.0.1:6379.");
        if (Clustering == ClusteringKind.Redis && PrimarySiloPort != 0)
            problems.Add("Headwise__PrimarySiloPort is for Localhost clustering; Redis clustering finds the other silos itself.");
        if (!IPAddress.TryParse(ListenAddress, out _))
            problems.Add($"Headwise__ListenAddress is '{ListenAddress}'; it must be an IP address such as 127.0.0.1 or 0.0.0.0.");
        if (!Enum.IsDefined(Kernel))
            problems.Add($"Headwise__Kernel is '{Kernel}'; use one of {string.Join(", ", Enum.GetNames<KernelKind>())}.");
        if (Speed is <= 0 or double.NaN)
            problems.Add($"Headwise__Speed is {Speed}; leave it unset to measure, or give a positive GFLOP/s.");
        if (HealthPublishSeconds is < 1 or > 3600 or double.NaN)
            problems.Add($"Headwise__HealthPublishSeconds is {HealthPublishSeconds}; it must be in 1..3600.");
        if (MaxUploadBytes < 1 || MaxUploadBytes > int.MaxValue)
            problems.Add($"Headwise__MaxUploadBytes is {MaxUploadBytes}; it must be in 1..{int.MaxValue}.");
        if (MaxUploadHeaderBytes < 2 || MaxUploadHeaderBytes > SafetensorsFile.DefaultMaxHeaderBytes)
            problems.Add($"Headwise__MaxUploadHeaderBytes is {MaxUploadHeaderBytes}; it must be in 2..{SafetensorsFile.DefaultMaxHeaderBytes}.");
        return problems;
    }
}

/// <summary>Membership provider of a silo.</summary>
public enum ClusteringKind { Localhost, Redis }

/// <summary>Grain storage provider of a silo.</summary>
public enum StorageKind { Memory, Redis }
