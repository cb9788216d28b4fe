using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Headwise.Kernels.Tests;

/// <summary>
/// Just enough safetensors to read tests/golden (an 8-byte header length, a JSON header, raw little-endian
/// F32/I32 data), kept here so the kernel tests depend on nothing but the kernels.
/// </summary>
internal sealed class GoldenFile
{
    private readonly byte[] data;
    private readonly Dictionary<string, (string DType, int[] Shape, int Begin, int End)> tensors = [];

    private GoldenFile(string path)
    {
        var bytes = File.ReadAllBytes(path);
        int headerLength = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(bytes));
        using var header = JsonDocument.Parse(bytes.AsMemory(8, headerLength));
        data = bytes[(8 + headerLength)..];
        foreach (var entry in header.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__")
            {
                Metadata = entry.Value.EnumerateObject().ToDictionary(item => item.Name, item => item.Value.GetString()!);
                continue;
            }
            var offsets = entry.Value.GetProperty("data_offsets");
            tensors[entry.Name] = (entry.Value.GetProperty("dtype").GetString()!,
                entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray(),
                offsets[0].GetInt32(), offsets[1].GetInt32());
        }
    }

    public IReadOnlyDictionary<string, string> Metadata { get; private set; } = new Dictionary<string, string>();

    public int Int(string key) => int.Parse(Metadata[key]);

    public bool Has(string name) => tensors.ContainsKey(name);

    public float[] Floats(string name) => Read<float>(name, "F32");

    public int[] Ints(string name) => Read<int>(name, "I32");

    private T[] Read<T>(string name, string dtype) where T : struct
    {
        var (actualType, _, begin, end) = tensors[name];
        Assert.Equal(dtype, actualType);
        // The files are little-endian, as is every machine .NET runs these tests on.
        return MemoryMarshal.Cast<byte, T>(data.AsSpan(begin, end - begin)).ToArray();
    }

    public static GoldenFile Open(string name)
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var path = Path.Combine(directory.FullName, "tests", "golden", name + ".safetensors");
            if (File.Exists(path)) return new GoldenFile(path);
        }
        throw new FileNotFoundException($"tests/golden/{name}.safetensors not found above {AppContext.BaseDirectory}");
    }
}
