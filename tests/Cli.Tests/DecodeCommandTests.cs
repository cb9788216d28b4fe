using System.Globalization;

namespace Headwise.Cli.Tests;

/// <summary><c>headwise decode</c> against a real embedded silo.</summary>
[Collection(SiloCollection.Name)]
public sealed class DecodeCommandTests(SiloFixture silo)
{
    private Task<CliRun> Run(params string[] args) => CliRun.RunAsync([.. args, "--server", silo.Server]);

    [Fact]
    public async Task Decode_prefills_then_steps_and_matches_one_causal_forward()
    {
        var run = await Run("decode", "--model", "demo", "--tokens", "24", "--prefill", "16", "--chunk", "3", "--batch", "2", "--check");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("", run.Error);
        Assert.Matches("^[0-9a-f]{32} \\(max_tokens 24, closed\\)$", run.Field("session"));
        Assert.Matches(@"^16 tokens in \d+\.\d+ ms$", run.Field("prefill"));
        Assert.Matches(@"^3 of 3 token\(s\): p50 \d+\.\d+ ms, p99 \d+\.\d+ ms, max \d+\.\d+ ms$", run.Field("steps"));
        var check = run.Field("check")!;
        double difference = double.Parse(check[(check.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        Assert.True(difference <= 1e-4, check);
    }

    [Fact]
    public async Task Decode_over_a_stream_matches_one_causal_forward_and_shows_the_stream_floor()
    {
        var run = await Run("decode", "--model", "demo", "--tokens", "12", "--prefill", "4", "--chunk", "2", "--stream", "--check");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("", run.Error);
        Assert.Equal("one DecodeStream", run.Field("transport"));
        Assert.Matches(@"^4 of 2 token\(s\): p50 \d+\.\d+ ms, p99 \d+\.\d+ ms, max \d+\.\d+ ms$", run.Field("steps"));
        // One ping after each of the five steps, the prefill's included.
        Assert.Matches(@"^5 ping\(s\) on the stream: p50 \d+\.\d+ ms, p99 \d+\.\d+ ms$", run.Field("no-op"));
        var check = run.Field("check")!;
        double difference = double.Parse(check[(check.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        Assert.True(difference <= 1e-4, check);
    }

    [Fact]
    public async Task A_prefill_longer_than_the_sequence_is_a_usage_error()
    {
        var run = await Run("decode", "--model", "demo", "--tokens", "4", "--prefill", "5");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--prefill", run.Error);
    }
}
