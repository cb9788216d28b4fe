using System.Buffers.Binary;
using System.Diagnostics;

namespace Headwise.Contracts.Tests;

/// <summary>
/// Random damage to a valid file (10,000 inputs): every result parses or is an InvalidArgument error, quickly, and
/// nothing allocates far beyond the input (a header length past the end or over 100 MB, huge shapes and offsets
/// must be refused before any buffer of that size exists).
/// </summary>
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
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        long largestAllocation = 0;
        for (int iteration = 0; iteration < Iterations; iteration++)
        {
            byte[] file = Mutate(valid, headerEnd, random);
            long before = GC.GetAllocatedBytesForCurrentThread();
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
            largestAllocation = Math.Max(largestAllocation, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.True(parsed > 50, $"only {parsed} mutations parsed");
        Assert.True(rejected > 1000, $"only {rejected} mutations were rejected");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"{Iterations} parses took {clock.Elapsed}");
        // The valid file is a few hundred bytes: no input may make the reader allocate megabytes.
        Assert.True(largestAllocation < 1 << 20, $"one parse allocated {largestAllocation} bytes");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocatedBefore < 1L << 30, "the fuzz run allocated over 1 GB in all");
    }

    private const int Iterations = 10_000;

    private static readonly string[] HostileHeaders =
    [
        // Header entries a hostile writer could send: unknown dtypes, shape x dtype != bytes, overlapping and
        // out-of-range offsets, offsets and shapes that overflow, wrong JSON types.
        """{"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}}""",
        """{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""",
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""",
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8000000000]}}""",
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}""",
        """{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}""",
        """{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""",
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}}""",
        """{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}""",
        """{"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}}""",
        """{"a":{"dtype":"F32","shape":[2]}}""",
        """{"a":[]}""",
        """[]""",
        """{"__metadata__":{"k":5}}""",
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""",
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""",
    ];

    private static byte[] Mutate(byte[] valid, int headerEnd, Random random)
    {
        byte[] file = (byte[])valid.Clone();
        switch (random.Next(10))
        {
            case 7: // random bytes, sometimes behind a plausible header length
                {
                    byte[] noise = new byte[random.Next(0, 512)];
                    random.NextBytes(noise);
                    if (noise.Length >= 8 && random.Next(2) == 0)
                        BinaryPrimitives.WriteUInt64LittleEndian(noise, (ulong)random.Next(0, noise.Length));
                    return noise;
                }
            case 8: // a header length over 100 MB or past the end, with no such bytes behind it
                BinaryPrimitives.WriteUInt64LittleEndian(file, random.Next(2) == 0
                    ? (ulong)(100 << 20) + (ulong)random.Next(1, 1 << 20)
                    : (ulong)file.Length + (ulong)random.Next(1, 1 << 16));
                return file;
            case 9: // a hostile header over 8 bytes of data, maybe with a digit changed
                {
                    byte[] header = global::System.Text.Encoding.UTF8.GetBytes(HostileHeaders[random.Next(HostileHeaders.Length)]);
                    if (random.Next(2) == 0)
                    {
                        int at = random.Next(header.Length);
                        if (header[at] is >= (byte)'0' and <= (byte)'9') header[at] = (byte)('0' + random.Next(10));
                    }
                    byte[] hostile = new byte[8 + header.Length + 8];
                    BinaryPrimitives.WriteUInt64LittleEndian(hostile, (ulong)header.Length);
                    header.CopyTo(hostile, 8);
                    return hostile;
                }
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
