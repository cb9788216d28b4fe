using System.ComponentModel;
using System.Diagnostics;
using System.Reflection;
using System.Text;
using Headwise.Contracts;
using Xunit.Abstractions;

namespace Headwise.Observability.Tests;

/// <summary>
/// The dashboard as a person sees it: headless Debian Chromium, driven by playwright-core (browser/, installed
/// with `npm ci`), opens silo 1's page while the three silos run. It fails, never skips, when node, the npm
/// packages or Chromium are missing. Screenshots land in the test output's screenshots/ folder.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DashboardBrowserTests(ThreeSiloCluster cluster, ITestOutputHelper output)
{
    private static readonly AttentionSpec Spec = new() { ModelDim = 96, HeadCount = 6, Bias = true };

    [Fact]
    public async Task Headless_chromium_sees_the_heads_on_each_silo_a_waterfall_per_head_and_attention_heatmaps()
    {
        string browser = typeof(DashboardBrowserTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "BrowserTestDirectory").Value!;
        string chromium = Environment.GetEnvironmentVariable("CHROMIUM") ?? "/usr/bin/chromium";
        Assert.True(File.Exists(chromium), $"Chromium is missing at {chromium}: apt-get install chromium");
        Assert.True(Directory.Exists(Path.Combine(browser, "node_modules", "playwright-core")),
            $"playwright-core is missing: run `npm ci` in {browser}");

        await cluster.CreateModel("browser", Spec);
        // Sessions decoding at once, first (their steps are traces too, and the passes below must stay among the newest):
        // the silos holding their heads have decode batches to show.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(s => Task.Run(() => Decode("browser", steps: 6, seed: s))));
        for (int silo = 0; silo < ThreeSiloCluster.SiloCount; silo++)
            await cluster.Forward("browser", Spec.ModelDim, tokens: 32, silo: silo);
        var withAttention = await cluster.Forward("browser", Spec.ModelDim, tokens: 40, attention: true, silo: 2);
        // A newer pass after it, so the test has to pick the attention pass from the list rather than get it by default.
        await cluster.Forward("browser", Spec.ModelDim, tokens: 32, silo: 0);

        string screenshots = Path.Combine(AppContext.BaseDirectory, "screenshots");
        Directory.CreateDirectory(screenshots);
        var start = new ProcessStartInfo("node")
        {
            WorkingDirectory = browser,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "dashboard.test.mjs", cluster.WebAddress(1).ToString(), screenshots, withAttention.TraceId, $"{Spec.HeadCount}", $"{Spec.HeadCount}" })
            start.ArgumentList.Add(argument);
        start.Environment["CHROMIUM"] = chromium;

        Process node;
        try
        {
            node = Process.Start(start)!;
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"node could not be started ({e.Message}): install Node.js (apt-get install nodejs npm) and run `npm ci` in {browser}");
            return;
        }

        using (node)
        {
            var log = new StringBuilder();
            var live = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            node.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (log) log.AppendLine(e.Data);
                if (e.Data == "ready for live") live.TrySetResult();
            };
            node.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null) lock (log) log.AppendLine("stderr: " + e.Data);
            };
            node.BeginOutputReadLine();
            node.BeginErrorReadLine();

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var exited = node.WaitForExitAsync(timeout.Token);
            if (await Task.WhenAny(live.Task, exited) == live.Task)
                await cluster.Forward("browser", Spec.ModelDim, tokens: 16, silo: 1);
            try
            {
                await exited;
            }
            catch (OperationCanceledException)
            {
                node.Kill(entireProcessTree: true);
                lock (log) log.AppendLine("killed after 60 s");
            }
            await node.WaitForExitAsync();

            string text;
            lock (log) text = log.ToString();
            output.WriteLine(text);
            output.WriteLine($"screenshots: {screenshots}");
            Console.WriteLine($"dashboard screenshots: {Path.Combine(screenshots, "dashboard.png")}");
            Assert.True(node.ExitCode == 0, $"the browser checks failed (exit {node.ExitCode}):\n{text}");
            Assert.True(File.Exists(Path.Combine(screenshots, "dashboard.png")), "no screenshot was saved");
        }
    }

    private async Task Decode(string model, int steps, int seed)
    {
        var session = cluster.Grains.GetGrain<IDecodeSessionGrain>(SessionIds.New());
        await session.Open(model, 0, steps);
        var random = new Random(seed);
        for (int step = 0; step < steps; step++)
        {
            var x = Enumerable.Range(0, Spec.ModelDim).Select(_ => (float)random.NextDouble()).ToArray();
            await session.Decode(new DecodeCommand { Batch = 1, Tokens = 1, ModelDim = Spec.ModelDim, Input = FloatBytes.ToBytes(x) });
        }
        await session.Close();
    }
}
