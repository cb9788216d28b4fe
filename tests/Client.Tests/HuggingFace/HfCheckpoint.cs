using System.Buffers.Binary;
using System.Text.Json;
using Headwise.Contracts;

namespace Headwise.Client.Tests;

/// <summary>
/// A tiny Hugging Face checkpoint directory written by a test: config.json, tensors in F32, F16 or BF16 (each value
/// rounded to its dtype first, and kept here exactly as written), in one model.safetensors or in shards with
/// model.safetensors.index.json. Deleted with the test.
/// </summary>
internal sealed class HfCheckpoint : IDisposable
{
    private readonly Random _random;
    private readonly List<(string Name, SafetensorsDType DType, long[] Shape, float[] Values)> _tensors = [];

    public HfCheckpoint(int seed)
    {
        _random = new Random(seed);
        Directory = Path.Combine(Path.GetTempPath(), $"headwise-hf-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    /// <summary>The values of a tensor as the checkpoint holds them.</summary>
    public float[] this[string name] => _tensors.Single(t => t.Name == name).Values;

    public bool Has(string name) => _tensors.Any(t => t.Name == name);

    /// <summary>Bytes of the safetensors data in all shards (what a whole-file upload would send).</summary>
    public long DataBytes => _tensors.Sum(t => t.Values.LongLength * t.DType.ByteSize());

    /// <summary>A tensor of normal values with standard deviation <paramref name="std"/>, rounded to <paramref name="dtype"/>.</summary>
    public void Add(string name, SafetensorsDType dtype, double std, params long[] shape)
    {
        var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
        for (int i = 0; i < values.Length; i++)
        {
            double u1 = 1.0 - _random.NextDouble(), u2 = _random.NextDouble();
            float value = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
            values[i] = dtype switch
            {
                SafetensorsDType.F16 => (float)(Half)value,
                SafetensorsDType.BF16 => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(value) & unchecked((int)0xFFFF0000)),
                _ => value,
            };
        }
        _tensors.Add((name, dtype, shape, values));
    }

    public void Remove(string name) => _tensors.RemoveAll(t => t.Name == name);

    public void Config(object config) =>
        File.WriteAllText(Path.Combine(Directory, "config.json"), JsonSerializer.Serialize(config));

    /// <summary>Writes the tensors: one model.safetensors for <paramref name="shards"/> 1, else round-robin shards and an index.</summary>
    public void Write(int shards, IEnumerable<string>? leftOutOfIndex = null)
    {
        if (shards == 1)
        {
            using var file = File.Create(Path.Combine(Directory, "model.safetensors"));
            SafetensorsWriter.Write(file, _tensors.Select(Entry));
            return;
        }
        var weightMap = new Dictionary<string, string>();
        for (int shard = 0; shard < shards; shard++)
        {
            string name = ShardName(shard, shards);
            var mine = _tensors.Where((_, i) => i % shards == shard).ToArray();
            using (var file = File.Create(Path.Combine(Directory, name)))
                SafetensorsWriter.Write(file, mine.Select(Entry));
            foreach (var tensor in mine) weightMap[tensor.Name] = name;
        }
        foreach (string name in leftOutOfIndex ?? []) weightMap.Remove(name);
        File.WriteAllText(Path.Combine(Directory, "model.safetensors.index.json"),
            JsonSerializer.Serialize(new { metadata = new { total_size = DataBytes }, weight_map = weightMap }));
    }

    public static string ShardName(int shard, int shards) => $"model-{shard + 1:00000}-of-{shards:00000}.safetensors";

    private static SafetensorsEntry Entry((string Name, SafetensorsDType DType, long[] Shape, float[] Values) tensor)
    {
        var bytes = new byte[tensor.Values.Length * tensor.DType.ByteSize()];
        for (int i = 0; i < tensor.Values.Length; i++)
        {
            float value = tensor.Values[i];
            switch (tensor.DType)
            {
                case SafetensorsDType.F16: BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(2 * i), (Half)value); break;
                case SafetensorsDType.BF16: BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16)); break;
                default: BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), value); break;
            }
        }
        return new SafetensorsEntry(tensor.Name, tensor.DType, tensor.Shape, bytes);
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // a mapping not yet released on some platforms; the temp directory is the OS's to clean
        }
    }
}
