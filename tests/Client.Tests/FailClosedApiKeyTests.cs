using Google.Protobuf.Reflection;
using Headwise.Contracts;
using Headwise.Silo.Gateway;
using Headwise.TestSupport;

namespace Headwise.Client.Tests;

/// <summary>
/// The API key check is fail-closed (the session calls against a live gateway are in ApiKeyTests and TlsGatewayTests,
/// beside the silos they share): every rpc of the contract is either listed as needing no key or needs it, and a
/// method nobody listed (one added later) needs the key whatever Headwise__RequireKeyForForward says.
/// </summary>
public sealed class ApiKeyClassificationTests
{
    private static readonly string[] Open = ["GetModel", "ListModels"];
    private static readonly string[] Compute = ["Forward", "OpenSession", "Decode", "DecodeStream", "CloseSession", "RegisterSharedMemory", "UnregisterSharedMemory"];

    private static IEnumerable<string> ContractMethods() =>
        V1.Attention.Descriptor.File.Services.SelectMany(service => service.Methods, (service, method) => $"/{service.FullName}/{method.Name}");

    [Fact]
    public void Every_rpc_of_the_contract_needs_the_key_unless_listed()
    {
        var methods = ContractMethods().ToList();
        Assert.Contains("/headwise.v1.Attention/CreateModel", methods);
        // The lists name only methods that exist: a rename would otherwise silently close (or a typo open) nothing.
        Assert.Subset(methods.Concat(HealthMethods).ToHashSet(), ApiKeyInterceptor.OpenMethods.ToHashSet());
        Assert.Subset(methods.ToHashSet(), ApiKeyInterceptor.ComputeMethods.ToHashSet());

        foreach (var method in methods)
        {
            string name = method[(method.LastIndexOf('/') + 1)..];
            Assert.Equal(!Open.Contains(name), ApiKeyInterceptor.NeedsKey(method, requireKeyForForward: true));
            Assert.Equal(!Open.Contains(name) && !Compute.Contains(name), ApiKeyInterceptor.NeedsKey(method, requireKeyForForward: false));
        }
    }

    private static readonly string[] HealthMethods = ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"];

    [Fact]
    public void Health_needs_no_key_since_probes_and_load_balancers_carry_none()
    {
        foreach (var method in HealthMethods)
        {
            Assert.False(ApiKeyInterceptor.NeedsKey(method, requireKeyForForward: true));
            Assert.False(ApiKeyInterceptor.NeedsKey(method, requireKeyForForward: false));
        }
    }

    [Theory]
    [InlineData("/headwise.v1.Attention/StoreHeadWeights")]
    [InlineData("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")]
    [InlineData("/grpc.health.v1.Health/List")]
    [InlineData("/headwise.v1.Attention/getmodel")]
    [InlineData("/headwise.v2.Attention/GetModel")]
    [InlineData("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")]
    [InlineData("GetModel")]
    [InlineData("")]
    public void A_method_in_no_list_needs_the_key(string method)
    {
        Assert.True(ApiKeyInterceptor.NeedsKey(method, requireKeyForForward: false));
        Assert.True(ApiKeyInterceptor.NeedsKey(method, requireKeyForForward: true));
    }
}

/// <summary>A small model with seeded weights for the session tests, and one decode step's input.</summary>
internal static class SessionModel
{
    public const int Tokens = 3;
    private static readonly GoldenCase Golden = GoldenCase.Load("gpt2-tiny");

    public static async Task CreateAsync(IAttentionClient keyed, string name)
    {
        await keyed.CreateModelAsync(name, Golden.Spec);
        await keyed.UploadWeightsAsync(name, new MemoryStream(Golden.Bytes), Golden.Layout, Golden.Prefix);
    }

    public static FloatTensor Step() =>
        new(Golden.Input.AsSpan(0, Tokens * Golden.Spec.ModelDim).ToArray(), 1, Tokens, Golden.Spec.ModelDim);
}
