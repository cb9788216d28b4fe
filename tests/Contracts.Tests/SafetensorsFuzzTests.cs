using System.Buffers.Binary;
using System.Diagnostics;

namespace Headwise.Contracts.Tests;

/// <summary>Random damage to a valid file: every result parses or is an InvalidArgument error, quickly.</summary>
public class SafetensorsFuzzTests
{
    private static readonly byte[] Interesting = "{}[]\",:0123456789-+.eE \\u\u00ff\0"u8.ToArray();

    private static byte[] ValidFile()
    {
        var random = new Random(5);
        float[] floats = Enumerable.Range(0, 24).Select(_ => (float)random.NextDouble()).ToArray();
        var bf16 = new byte[12];
        random.NextBytes(bf16);
        return SafetensorsWriter.ToBytes(
        [
            SafetensorsEntry.F32("w", floats, 2, 3, 4),
            new SafetensorsEntry("lengths", SafetensorsDType.I32, [2], new byte[] { 9, 0, 0, 0, 5, 0, 0, 0 }),
            new SafetensorsEntry("half", SafetensorsDType.BF16, [6], bf16),
            new SafetensorsEntry("mask", SafetensorsDType.BOOL, [3], new byte[] { 1, 0, 1 }),
            new SafetensorsEntry("empty", SafetensorsDType.F16, [0], Array.Empty<byte>()),
        ], new Dictionary<string, string> { ["layout"] = "gpt2", ["layers"] = "1" });
    }

    [Fact]
    public void MutatedFilesParseOrFailWithInvalidArgument()
    {
        byte[] valid = ValidFile();
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        var random = new Random(20240611);
        int parsed = 0, rejected = 0;
        var clock = Stopwatch.StartNew();
        for (int iteration = 0; iteration < 5000; iteration++)
        {
            byte[] file = Mutate(valid, headerEnd, random);
            try
            {
                var result = SafetensorsFile.Parse(file);
                foreach (var tensor in result.Tensors.Values)
                {
                    if (tensor.DType is SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16)
                        Assert.Equal(tensor.ElementCount, tensor.ToFloat32().Length);
                    else if (tensor.DType == SafetensorsDType.I32)
                        Assert.Equal(tensor.ElementCount, tensor.ToInt32().Length);
                }
                parsed++;
            }
            catch (HeadwiseException e)
            {
                Assert.Equal(ErrorCode.InvalidArgument, e.Code);
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
                rejected++;
            }
        }
        Assert.True(parsed > 50, $"only {parsed} mutations parsed");
        Assert.True(rejected > 1000, $"only {rejected} mutations were rejected");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"5000 parses took {clock.Elapsed}");
    }

    private static byte[] Mutate(byte[] valid, int headerEnd, Random random)
    {
        byte[] file = (byte[])valid.Clone();
        switch (random.Next(7))
        {
            case 0: // flip a few bits anywhere
                for (int i = random.Next(1, 5); i > 0; i--)
                    file[random.Next(file.Length)] ^= (byte)(1 << random.Next(8));
                return file;
            case 1: // a JSON-ish character somewhere in the header
                for (int i = random.Next(1, 3); i > 0; i--)
                    file[random.Next(8, headerEnd)] = Interesting[random.Next(Interesting.Length)];
                return file;
            case 2: // a digit in the header: shapes and offsets
                {
                    int at = random.Next(8, headerEnd);
                    if (file[at] is >= (byte)'0' and <= (byte)'9')
                        file[at] = (byte)('0' + random.Next(10));
                    else
                        file[at] = (byte)random.Next(256);
                    return file;
                }
            case 3: // truncate
                return file[..random.Next(file.Length)];
            case 4: // another header length
                {
                    ulong length = random.Next(4) switch
                    {
                        0 => (ulong)random.NextInt64(),
                        1 => (ulong)(headerEnd - 8 + random.Next(-16, 17)),
                        2 => ulong.MaxValue - (ulong)random.Next(16),
                        _ => (ulong)random.Next(0, 16),
                    };
                    BinaryPrimitives.WriteUInt64LittleEndian(file, length);
                    return file;
                }
            case 5: // delete a header byte, keeping the recorded length
                {
                    int at = random.Next(8, headerEnd);
                    return [.. file[..at], .. file[(at + 1)..]];
                }
            default: // insert a byte into the header and record the new length
                {
                    int at = random.Next(8, headerEnd);
                    byte[] grown = [.. file[..at], Interesting[random.Next(Interesting.Length)], .. file[at..]];
                    BinaryPrimitives.WriteUInt64LittleEndian(grown, (ulong)(headerEnd - 8 + 1));
                    return grown;
                }
        }
    }
}
