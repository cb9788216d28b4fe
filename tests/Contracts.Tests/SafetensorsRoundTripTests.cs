using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Headwise.Contracts.Tests;

public class SafetensorsRoundTripTests
{
    private static byte[] Bytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public void EveryDTypeRoundTripsWithShapeDataAndMetadata()
    {
        var entries = new List<SafetensorsEntry>();
        int seed = 0;
        foreach (SafetensorsDType dtype in Enum.GetValues<SafetensorsDType>())
            entries.Add(new SafetensorsEntry($"t.{dtype}", dtype, [2, 3], Bytes(6 * dtype.ByteSize(), seed++)));
        entries.Add(new SafetensorsEntry("scalar", SafetensorsDType.F32, [], Bytes(4, 99)));
        entries.Add(new SafetensorsEntry("empty", SafetensorsDType.F32, [0, 5], Array.Empty<byte>()));
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\" <tag>" };

        byte[] file = SafetensorsWriter.ToBytes(entries, metadata);
        var parsed = SafetensorsFile.Parse(file);

        Assert.Equal(metadata, parsed.Metadata);
        Assert.Equal(entries.Count, parsed.Tensors.Count);
        foreach (var entry in entries)
        {
            var tensor = parsed.Get(entry.Name);
            Assert.Equal(entry.Name, tensor.Name);
            Assert.Equal(entry.DType, tensor.DType);
            Assert.Equal(entry.Shape, tensor.Shape);
            Assert.Equal(entry.Shape.Aggregate(1L, (a, b) => a * b), tensor.ElementCount);
            Assert.Equal(entry.Data.ToArray(), tensor.Data.ToArray());
        }
    }

    [Fact]
    public void StreamAndArrayWritersAgree()
    {
        SafetensorsEntry[] entries = [SafetensorsEntry.F32("a", [1f, 2f, 3f], 3), SafetensorsEntry.F32("b", [4f, 5f], 1, 2)];
        using var stream = new MemoryStream();
        SafetensorsWriter.Write(stream, entries, new Dictionary<string, string> { ["k"] = "v" });
        Assert.Equal(SafetensorsWriter.ToBytes(entries, new Dictionary<string, string> { ["k"] = "v" }), stream.ToArray());
    }

    [Fact]
    public void HeaderIsPaddedWithSpacesToAMultipleOf8AndDataIsContiguousInOrder()
    {
        for (int nameLength = 1; nameLength <= 9; nameLength++)
        {
            var a = new SafetensorsEntry(new string('a', nameLength), SafetensorsDType.U8, [3], new byte[] { 1, 2, 3 });
            var b = new SafetensorsEntry("b", SafetensorsDType.U8, [2], new byte[] { 4, 5 });
            byte[] file = SafetensorsWriter.ToBytes([a, b]);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file);
            Assert.Equal(0UL, headerLength % 8);
            string header = Encoding.UTF8.GetString(file, 8, (int)headerLength);
            Assert.StartsWith("{", header);
            Assert.EndsWith("}", header.TrimEnd(' '));
            Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, file[(8 + (int)headerLength)..]);
            Assert.Contains("\"data_offsets\":[3,5]", header);
        }
    }

    [Fact]
    public void TensorDataIsASliceOfTheGivenMemoryNotACopy()
    {
        byte[] file = SafetensorsWriter.ToBytes([SafetensorsEntry.F32("w", [1f, 2f], 2)]);
        var tensor = SafetensorsFile.Parse(file).Get("w");
        Assert.True(MemoryMarshal.TryGetArray(tensor.Data, out ArraySegment<byte> segment));
        Assert.Same(file, segment.Array);
        Assert.Equal(file.Length - 8, segment.Offset);
    }

    [Fact]
    public void F32ConvertsExactly()
    {
        float[] values = [0f, -0f, 1.5f, -3.25e-7f, float.MaxValue, float.Epsilon, float.PositiveInfinity];
        var tensor = SafetensorsFile.Parse(SafetensorsWriter.ToBytes([SafetensorsEntry.F32("f", values, values.Length)])).Get("f");
        Assert.Equal(values, tensor.ToFloat32());
    }

    [Fact]
    public void F16ConvertsAsSystemHalf()
    {
        Half[] halves = [(Half)0f, (Half)1f, (Half)(-2.5f), (Half)0.1f, Half.MaxValue, Half.Epsilon, (Half)65504f, Half.NegativeInfinity, (Half)6.1e-5f];
        var data = new byte[2 * halves.Length];
        for (int i = 0; i < halves.Length; i++)
            BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(2 * i), halves[i]);
        var tensor = SafetensorsFile.Parse(SafetensorsWriter.ToBytes([new SafetensorsEntry("h", SafetensorsDType.F16, [halves.Length], data)])).Get("h");
        Assert.Equal(halves.Select(h => (float)h).ToArray(), tensor.ToFloat32());
        Assert.Equal(0.0999755859375f, tensor.ToFloat32()[3]); // the half nearest 0.1
    }

    [Fact]
    public void BF16IsTheUpperHalfOfFloat32()
    {
        // bits → value, worked out by hand: sign | 8-bit exponent | 7-bit mantissa.
        (ushort Bits, float Value)[] cases =
        [
            (0x0000, 0f), (0x3F80, 1f), (0xBF80, -1f), (0x4049, 3.140625f), (0xC020, -2.5f),
            (0x3C00, 0.0078125f), (0x7F80, float.PositiveInfinity), (0xFF80, float.NegativeInfinity),
            (0x7F7F, 3.3895314e38f), (0x0080, 1.1754944e-38f),
        ];
        var data = new byte[2 * cases.Length];
        for (int i = 0; i < cases.Length; i++)
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(2 * i), cases[i].Bits);
        var tensor = SafetensorsFile.Parse(SafetensorsWriter.ToBytes([new SafetensorsEntry("b", SafetensorsDType.BF16, [cases.Length], data)])).Get("b");
        Assert.Equal(cases.Select(c => c.Value).ToArray(), tensor.ToFloat32());
        var nan = SafetensorsFile.Parse(SafetensorsWriter.ToBytes([new SafetensorsEntry("n", SafetensorsDType.BF16, [1], new byte[] { 0xC0, 0x7F })])).Get("n");
        Assert.True(float.IsNaN(nan.ToFloat32()[0]));
    }

    [Fact]
    public void I32ConvertsAndOtherDTypesAreRefusedWithTheirNames()
    {
        var data = new byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(data, -7);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(4), 0);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(8), int.MaxValue);
        var file = SafetensorsFile.Parse(SafetensorsWriter.ToBytes(
        [
            new SafetensorsEntry("ints", SafetensorsDType.I32, [3], data),
            new SafetensorsEntry("doubles", SafetensorsDType.F64, [1], new byte[8]),
            SafetensorsEntry.F32("floats", [1f], 1),
        ]));
        Assert.Equal(new[] { -7, 0, int.MaxValue }, file.Get("ints").ToInt32());
        Expect.Invalid(() => file.Get("ints").ToFloat32(), "'ints'", "I32", "F32, F16 or BF16");
        Expect.Invalid(() => file.Get("doubles").ToFloat32(), "'doubles'", "F64", "F32, F16 or BF16");
        Expect.Invalid(() => file.Get("floats").ToInt32(), "'floats'", "F32", "expected I32");
    }

    [Fact]
    public void AFileWithNoTensorsRoundTrips()
    {
        byte[] bytes = SafetensorsWriter.ToBytes([]);
        Assert.Equal(16, bytes.Length); // length, then "{}" and six spaces
        var file = SafetensorsFile.Parse(bytes);
        Assert.Empty(file.Tensors);
        Assert.Empty(file.Metadata);
    }

    [Fact]
    public void GetNamesTheMissingTensor()
    {
        var file = SafetensorsFile.Parse(SafetensorsWriter.ToBytes([SafetensorsEntry.F32("a", [1f], 1)]));
        Expect.Invalid(() => file.Get("nope"), "'nope'");
    }

    [Fact]
    public void AFileWithoutMetadataHasAnEmptyMap()
    {
        var file = SafetensorsFile.Parse(SafetensorsWriter.ToBytes([SafetensorsEntry.F32("a", [1f], 1)]));
        Assert.Empty(file.Metadata);
        Assert.DoesNotContain("__metadata__", Encoding.UTF8.GetString(SafetensorsWriter.ToBytes([SafetensorsEntry.F32("a", [1f], 1)])));
    }

    [Fact]
    public async Task ReadAsyncReadsWhatWriteWrote()
    {
        string path = Path.Combine(Path.GetTempPath(), $"headwise-{Guid.NewGuid():N}.safetensors");
        try
        {
            using (var stream = File.Create(path))
                SafetensorsWriter.Write(stream, [SafetensorsEntry.F32("w", [1f, 2f, 3f, 4f], 2, 2)], new Dictionary<string, string> { ["m"] = "1" });
            var file = await SafetensorsFile.ReadAsync(path);
            Assert.Equal(new[] { 1f, 2f, 3f, 4f }, file.Get("w").ToFloat32());
            Assert.Equal("1", file.Metadata["m"]);

            await File.WriteAllBytesAsync(path, new byte[] { 1, 2, 3 });
            var e = await Assert.ThrowsAsync<HeadwiseException>(() => SafetensorsFile.ReadAsync(path));
            Assert.Equal(ErrorCode.InvalidArgument, e.Code);
            Assert.Contains(path, e.Message);
            Assert.Contains("at least 8", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void WriterRefusesMalformedEntries()
    {
        Expect.Invalid(() => SafetensorsWriter.ToBytes([new SafetensorsEntry("a", SafetensorsDType.F32, [2], new byte[4])]), "'a'", "4 bytes", "expected 8");
        Expect.Invalid(() => SafetensorsWriter.ToBytes([new SafetensorsEntry("a", SafetensorsDType.F32, [-1], new byte[4])]), "'a'", "non-negative");
        Expect.Invalid(() => SafetensorsWriter.ToBytes([new SafetensorsEntry("a", SafetensorsDType.U8, [long.MaxValue, 4], new byte[4])]), "'a'");
        Expect.Invalid(() => SafetensorsWriter.ToBytes([SafetensorsEntry.F32("a", [1f], 1), SafetensorsEntry.F32("a", [1f], 1)]), "'a'", "twice");
        Expect.Invalid(() => SafetensorsWriter.ToBytes([SafetensorsEntry.F32("__metadata__", [1f], 1)]), "'__metadata__'", "reserved");
        Expect.Invalid(() => SafetensorsEntry.F32("a", [1f, 2f, 3f], 2, 2), "'a'", "3 values", "[2, 2]");
        Expect.Invalid(() => SafetensorsWriter.ToBytes([SafetensorsEntry.F32("bad\ud800", [1f], 1)]), "tensor name", "lone surrogate");
        Expect.Invalid(() => SafetensorsWriter.ToBytes([], new Dictionary<string, string> { ["k"] = "\udc00" }), "metadata 'k'", "lone surrogate");
    }
}
