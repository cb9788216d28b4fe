using Headwise.Contracts;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Headwise.Client.Tests;

/// <summary><c>AddHeadwiseClient</c> from a delegate or from configuration gives a client that reaches the silo with the options asked for.</summary>
[Collection(SiloCollection.Name)]
public sealed class ClientRegistrationTests(SiloFixture silo)
{
    [Fact]
    public async Task Options_bound_from_a_configuration_section_reach_the_client()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Headwise:Address"] = silo.GrpcAddress.ToString(),
            ["Headwise:ApiKey"] = "",
            ["Headwise:DefaultDeadline"] = "00:00:07",
            ["Headwise:MaxAttempts"] = "3",
            ["Headwise:InitialBackoff"] = "00:00:00.050",
            ["Headwise:MaxBackoff"] = "00:00:01",
        }).Build();
        await using var provider = new ServiceCollection().AddHeadwiseClient(configuration.GetSection("Headwise")).BuildServiceProvider();

        var options = provider.GetRequiredService<IOptions<GrpcAttentionClientOptions>>().Value;
        Assert.Equal(silo.GrpcAddress, options.Address);
        Assert.Equal(TimeSpan.FromSeconds(7), options.DefaultDeadline);
        Assert.Equal(3, options.MaxAttempts);
        Assert.Equal(TimeSpan.FromMilliseconds(50), options.InitialBackoff);
        Assert.Equal(TimeSpan.FromSeconds(1), options.MaxBackoff);

        var client = provider.GetRequiredService<IAttentionClient>();
        Assert.IsType<GrpcAttentionClient>(client);
        var missing = await Assert.ThrowsAsync<HeadwiseException>(() => client.GetModelAsync("registration-missing"));
        Assert.Equal(ErrorCode.NotFound, missing.Code);
    }

    [Fact]
    public async Task Options_set_by_a_delegate_reach_the_client()
    {
        await using var provider = new ServiceCollection()
            .AddHeadwiseClient(options => { options.Address = silo.GrpcAddress; options.DefaultDeadline = null; })
            .BuildServiceProvider();
        Assert.Null(provider.GetRequiredService<IOptions<GrpcAttentionClientOptions>>().Value.DefaultDeadline);
        var models = await provider.GetRequiredService<IAttentionClient>().ListModelsAsync();
        Assert.NotNull(models);
    }

    [Fact]
    public async Task A_deadline_that_is_not_positive_is_refused_when_the_client_is_made()
    {
        await using var provider = new ServiceCollection()
            .AddHeadwiseClient(options => { options.Address = silo.GrpcAddress; options.DefaultDeadline = TimeSpan.Zero; })
            .BuildServiceProvider();
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => provider.GetRequiredService<IAttentionClient>());
        Assert.Equal("DefaultDeadline", error.ParamName);
    }
}
