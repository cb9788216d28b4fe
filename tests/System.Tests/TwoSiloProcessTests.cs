using Headwise.Client;
using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>Two silo processes on loopback forming one cluster: heads spread over both, answers still exact.</summary>
public sealed class TwoSiloProcessTests
{
    [Fact]
    public async Task Golden_case_through_either_gateway_with_heads_on_both_processes()
    {
        // Equal advertised speeds, so the spread is exactly even whatever the machine's load at start.
        await using var first = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string> { ["Headwise__DemoModel"] = "false", ["Headwise__Speed"] = "100" });
        await first.WaitUntilHealthyAsync();
        await using var second = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string>
        {
            ["Headwise__DemoModel"] = "false",
            ["Headwise__Speed"] = "100",
            ["Headwise__PrimarySiloPort"] = first.SiloPort.ToString(),
        });
        await second.WaitUntilHealthyAsync();

        var golden = GoldenCase.Load("gpt2-small-shape");
        await using var viaSecond = new GrpcAttentionClient(second.GrpcAddress);
        await using var viaFirst = new GrpcAttentionClient(first.GrpcAddress);
        await viaSecond.CreateModelAsync("spread", golden.Spec);
        var model = await viaSecond.UploadWeightsAsync("spread", new MemoryStream(golden.Bytes), golden.Layout, golden.Prefix);
        for (int attempt = 0; attempt < 30 && model.Heads.Select(h => h.Silo).Distinct().Count() < 2; attempt++)
        {
            // The second silo may not have reached the first one's view yet when the heads were placed.
            await Task.Delay(1000);
            await viaSecond.RebalanceAsync("spread");
            model = await viaSecond.GetModelAsync("spread");
        }

        var perSilo = model.Heads.GroupBy(h => h.Silo).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new HashSet<string> { $"127.0.0.1:{first.SiloPort}", $"127.0.0.1:{second.SiloPort}" }, perSilo.Keys.ToHashSet());
        Assert.All(perSilo.Values, count => Assert.Equal(6, count));

        foreach (var client in new[] { viaFirst, viaSecond })
        {
            var output = await client.ForwardAsync("spread", new AttentionInput
            {
                Input = new FloatTensor(golden.Input, golden.Batch, golden.Tokens, golden.Spec.ModelDim),
                Causal = true,
            });
            Tolerance.AssertClose(golden.Expected("expected.0.causal"), output.Output.Data.Span, "expected.0.causal across processes");
            Assert.Equal(2, output.Heads.Select(h => h.Silo).Distinct().Count());
        }
    }
}
