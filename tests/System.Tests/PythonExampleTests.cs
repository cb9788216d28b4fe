using System.Diagnostics;
using Headwise.TestSupport;

namespace Headwise.SystemTests;

/// <summary>
/// Any language, proven: examples/python/headwise_example.py, with a client generated from headwise.proto by Debian's
/// protoc and grpc_python_plugin and run on Debian's python3-grpcio and python3-numpy, creates a model from a golden file,
/// uploads it, runs Forward (inline and through a /dev/shm file it maps with Python's mmap) and a decode session against a
/// silo on loopback, and its outputs match the golden ones
/// (libtorch, float64) and numpy's own attention. Without those packages this test fails, naming them; it never skips.
/// </summary>
public sealed class PythonExampleTests
{
    private const string Python = "/usr/bin/python3";
    private const string Packages = "python3-grpcio python3-protobuf python3-numpy protobuf-compiler protobuf-compiler-grpc";

    [Fact]
    public async Task The_python_example_matches_the_golden_outputs_through_forward_and_decode()
    {
        string proto = Path.Combine(BuiltPrograms.Repository, "src", "Contracts", "protos");
        string example = Path.Combine(BuiltPrograms.Repository, "examples", "python", "headwise_example.py");
        string generated = Directory.CreateTempSubdirectory("headwise-python-").FullName;
        try
        {
            var imports = await RunAsync(Python, ["-c", "import grpc, numpy, google.protobuf"]);
            Assert.True(imports.Exit == 0, $"{Python} cannot import grpc, numpy and protobuf ({imports.Output.Trim()}); apt-get install {Packages}");
            string? plugin = Which("grpc_python_plugin");
            Assert.True(Which("protoc") is not null && plugin is not null, $"protoc or grpc_python_plugin is missing; apt-get install {Packages}");
            var protoc = await RunAsync("protoc", [$"-I{proto}", $"--python_out={generated}", $"--grpc_out={generated}",
                $"--plugin=protoc-gen-grpc={plugin}", Path.Combine(proto, "headwise.proto")]);
            Assert.True(protoc.Exit == 0, $"protoc failed: {protoc.Output}");

            await using var silo = SiloProcess.Start(BuiltPrograms.SiloDll, new Dictionary<string, string> { ["Headwise__DemoModel"] = "false" });
            await silo.WaitUntilHealthyAsync();
            // GPT-2's fused Conv1D layout with two layers, and a Llama-style layout with grouped-query attention.
            foreach (var golden in new[] { "gpt2-tiny", "linear-gqa-window" })
            {
                var run = await RunAsync(Python, [example, "--server", $"127.0.0.1:{silo.GrpcAddress.Port}",
                    "--golden", Path.Combine(BuiltPrograms.Repository, "tests", "golden", golden + ".safetensors")],
                    ("PYTHONPATH", generated));
                Assert.True(run.Exit == 0, $"{golden}: the example exited with {run.Exit}:\n{run.Output}");
                foreach (var line in new[] { "NUMPY vs golden OK", "FORWARD vs golden OK", "FORWARD vs numpy OK", "FORWARD SHM vs golden OK", "DECODE vs golden OK", "DECODE STREAM order OK", "DECODE STREAM vs golden OK" })
                    Assert.Contains(line, run.Output);
            }
        }
        finally
        {
            Directory.Delete(generated, recursive: true);
        }
    }

    private static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(dir => Path.Combine(dir, program)).FirstOrDefault(File.Exists);

    private static async Task<(int Exit, string Output)> RunAsync(string program, string[] arguments, params (string, string)[] environment)
    {
        var start = new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (key, value) in environment) start.Environment[key] = value;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output + await error);
    }
}
