using System.Net.Http.Json;
using System.Text.Json;
using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>
/// The standard OpenTelemetry sampler settings reach a silo's tracer: with OTEL_TRACES_SAMPLER=traceidratio and
/// OTEL_TRACES_SAMPLER_ARG=0 a forward pass records no Headwise span (the dashboard's /api/traces, fed by the silo's
/// own tracer, stays empty), without them every pass is recorded, and a setting the specification does not allow stops
/// the start with a message naming the variable.
/// </summary>
public sealed class TraceSamplerTests
{
    [Theory]
    [InlineData(null, null, true)]
    [InlineData("traceidratio", "0", false)]
    [InlineData("parentbased_always_off", null, false)]
    public async Task The_sampler_follows_OTEL_TRACES_SAMPLER(string? sampler, string? argument, bool recorded)
    {
        var environment = new Dictionary<string, string>();
        if (sampler is not null) environment["OTEL_TRACES_SAMPLER"] = sampler;
        if (argument is not null) environment["OTEL_TRACES_SAMPLER_ARG"] = argument;
        await using var silo = SiloProcess.Start(BuiltPrograms.SiloDll, environment);
        await silo.WaitUntilHealthyAsync();

        await using (var client = new GrpcAttentionClient(silo.GrpcAddress))
            for (int i = 0; i < 3; i++)
                await client.ForwardAsync("demo", new AttentionInput { Input = new FloatTensor(new float[4 * 768], 1, 4, 768), Causal = true });

        using var http = new HttpClient();
        int traces = 0;
        // The spans reach the silo's ring as they end, a moment after the reply: ask for a while before counting none.
        for (var deadline = DateTime.UtcNow.AddSeconds(3); DateTime.UtcNow < deadline && traces < 3; await Task.Delay(200))
        {
            var list = await http.GetFromJsonAsync<JsonElement>(new Uri(silo.WebAddress, "/api/traces"));
            traces = list.GetProperty("traces").GetArrayLength();
        }
        Assert.Equal(recorded ? 3 : 0, traces);
    }

    [Theory]
    [InlineData("traceidratio", "1.5", "OTEL_TRACES_SAMPLER_ARG is '1.5'")]
    [InlineData("sometimes", null, "OTEL_TRACES_SAMPLER is 'sometimes'")]
    public async Task A_sampler_setting_out_of_the_specification_stops_the_start(string sampler, string? argument, string message)
    {
        var environment = new Dictionary<string, string> { ["OTEL_TRACES_SAMPLER"] = sampler };
        if (argument is not null) environment["OTEL_TRACES_SAMPLER_ARG"] = argument;
        await using var silo = SiloProcess.Start(BuiltPrograms.SiloDll, environment);
        Assert.NotEqual(0, await silo.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(message, silo.Output);
    }
}
