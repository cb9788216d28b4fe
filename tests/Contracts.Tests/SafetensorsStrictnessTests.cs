using System.Buffers.Binary;
using System.Text;

namespace Headwise.Contracts.Tests;

/// <summary>Every malformed file is an InvalidArgument error whose message names the problem.</summary>
public class SafetensorsStrictnessTests
{
    /// <summary>A file with the given header text (its length written in front) and data bytes.</summary>
    private static byte[] Raw(string header, int dataBytes = 0) => Raw(Encoding.UTF8.GetBytes(header), new byte[dataBytes]);

    private static byte[] Raw(byte[] header, byte[] data)
    {
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        return file;
    }

    private static byte[] WithHeaderLength(ulong headerLength, int restBytes)
    {
        var file = new byte[8 + restBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(file, headerLength);
        return file;
    }

    private static void Rejects(byte[] file, params string[] fragments) =>
        Expect.Invalid(() => SafetensorsFile.Parse(file), fragments);

    [Fact]
    public void AValidHandWrittenFileParses()
    {
        var file = SafetensorsFile.Parse(Raw("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"I8","shape":[0],"data_offsets":[8,8]}}  """, 8));
        Assert.Equal(2, file.Tensors.Count);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    public void FileShorterThan8Bytes(int length) => Rejects(new byte[length], $"has {length} bytes", "at least 8");

    [Fact]
    public void HeaderLengthZero() => Rejects(WithHeaderLength(0, 16), "header length is 0");

    [Fact]
    public void HeaderLengthPastTheEnd() => Rejects(WithHeaderLength(100, 10), "100 bytes", "past the end", "at most 10");

    [Fact]
    public void HeaderLengthOverTheLimit()
    {
        byte[] file = Raw("""{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""", 1);
        Assert.Single(SafetensorsFile.Parse(file).Tensors);
        Rejects(WithHeaderLength(ulong.MaxValue, 8), $"{ulong.MaxValue} bytes", $"at most {100 << 20}");
        Expect.Invalid(() => SafetensorsFile.Parse(file, maxHeaderBytes: 16), "at most 16 are allowed");
        Assert.Throws<ArgumentOutOfRangeException>(() => SafetensorsFile.Parse(file, maxHeaderBytes: 0));
    }

    [Fact]
    public void HeaderLengthIsCheckedBeforeAnythingIsAllocated()
    {
        byte[] claimsHuge = WithHeaderLength(90L << 20, 16); // under the limit, but past the end
        byte[] overLimit = WithHeaderLength(1UL << 40, 16);
        Rejects(claimsHuge); // warm up JIT and exception machinery
        Rejects(overLimit);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++)
        {
            try { SafetensorsFile.Parse(claimsHuge); } catch (HeadwiseException) { }
            try { SafetensorsFile.Parse(overLimit); } catch (HeadwiseException) { }
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1 << 20, $"20 rejected parses allocated {allocated} bytes");
    }

    [Fact]
    public void InvalidUtf8() => Rejects(Raw([(byte)'{', (byte)'"', 0xFF, 0xFE, (byte)'"', (byte)':', (byte)'1', (byte)'}'], []), "UTF-8");

    [Theory]
    [InlineData("""{"a":""")]
    [InlineData("""{"a":{"dtype":"F32"}""")]
    [InlineData("""{} trailing""")]
    [InlineData("""{'a':1}""")]
    [InlineData("\u0000\u0000")]
    public void InvalidJson(string header) => Rejects(Raw(header), "not valid JSON");

    [Fact]
    public void DeeplyNestedJsonIsRefusedNotAStackOverflow() =>
        Rejects(Raw("{\"__metadata__\":" + new string('[', 5000) + new string(']', 5000) + "}"), "not valid JSON");

    [Theory]
    [InlineData("[]", "array")]
    [InlineData("\"text\"", "string")]
    [InlineData("42", "number")]
    [InlineData("null", "null")]
    public void HeaderNotAnObject(string header, string kind) => Rejects(Raw(header), $"is a JSON {kind}", "expected an object");

    [Theory]
    [InlineData("""{"a":1}""", "'a' is a JSON number")]
    [InlineData("""{"a":{"shape":[1],"data_offsets":[0,4]}}""", "'a' has no 'dtype'")]
    [InlineData("""{"a":{"dtype":"F32","data_offsets":[0,4]}}""", "'a' has no 'shape'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1]}}""", "'a' has no 'data_offsets'")]
    [InlineData("""{"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}""", "'dtype' that is a JSON number")]
    [InlineData("""{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}""", "'shape' that is a JSON string")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}""", "shape[0] = 1.5")]
    [InlineData("""{"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}""", "shape[0] = \"1\"")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1e30],"data_offsets":[0,4]}}""", "shape[0] = 1e30")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}""", "'data_offsets' [0]", "[begin, end]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", "'data_offsets' [0,4,8]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":{"b":0}}}""", "'data_offsets'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}}""", "data_offsets[1] = \"4\"")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,4]}}""", "data_offsets[0] = -4")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}""", "unknown field 'extra'")]
    [InlineData("""{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "field 'dtype' twice")]
    public void EntryWithAMissingFieldOrWrongJsonType(string header, params string[] fragments) => Rejects(Raw(header, 8), fragments);

    [Theory]
    [InlineData("F8_E4M3")]
    [InlineData("f32")]
    [InlineData("FLOAT")]
    [InlineData("")]
    public void UnknownDTypeIsNamed(string dtype) =>
        Rejects(Raw($$$"""{"a":{"dtype":"{{{dtype}}}","shape":[1],"data_offsets":[0,4]}}""", 4), $"'a' has dtype '{dtype}'", "F32");

    [Fact]
    public void NegativeDimension() =>
        Rejects(Raw("""{"a":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}}""", 16), "'a'", "shape[1] = -2", "non-negative");

    [Fact]
    public void ShapeProductOverflow() =>
        Rejects(Raw("""{"a":{"dtype":"U8","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}}""", 4), "'a'", "product of its shape overflows");

    [Fact]
    public void ByteSizeOverflow() =>
        Rejects(Raw("""{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]}}""", 4), "'a'", "byte size overflows");

    [Fact]
    public void BeginAfterEnd() =>
        Rejects(Raw("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 8), "'a'", "[8, 4]", "begin <= end");

    [Fact]
    public void EndPastTheData() =>
        Rejects(Raw("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 4), "'a'", "past the end of the data", "end <= 4");

    [Fact]
    public void EndPastTheDataByAHugeOffset() =>
        Rejects(Raw("""{"a":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]}}""", 4), "'a'", "past the end");

    [Fact]
    public void ByteCountNotElementsTimesDTypeSize() =>
        Rejects(Raw("""{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}""", 16), "'a'", "has 12 bytes", "expected 16", "[2, 2]", "F32");

    [Fact]
    public void OverlappingRanges() =>
        Rejects(Raw("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12),
            "'b'", "overlaps tensor 'a'", "disjoint");

    [Fact]
    public void IdenticalRangesOverlap() =>
        Rejects(Raw("""{"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 4),
            "overlaps");

    [Fact]
    public void ARangeInsideAnotherOverlaps() =>
        Rejects(Raw("""{"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},"b":{"dtype":"U8","shape":[2],"data_offsets":[8,10]},"c":{"dtype":"U8","shape":[2],"data_offsets":[12,14]}}""", 16),
            "overlaps tensor 'a'");

    [Fact]
    public void EmptyTensorsShareNoBytes()
    {
        var file = SafetensorsFile.Parse(Raw("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[0],"data_offsets":[2,2]},"c":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}}""", 4));
        Assert.Equal(3, file.Tensors.Count);
    }

    [Fact]
    public void DuplicateTensorNames() =>
        Rejects(Raw("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8),
            "'a' twice");

    [Theory]
    [InlineData("""{"__metadata__":[]}""", "'__metadata__' is a JSON array")]
    [InlineData("""{"__metadata__":{"k":1}}""", "'__metadata__.k' is a JSON number", "expected a string")]
    [InlineData("""{"__metadata__":{"k":"a","k":"b"}}""", "key 'k' twice")]
    [InlineData("""{"__metadata__":{},"__metadata__":{}}""", "'__metadata__' twice")]
    public void MalformedMetadata(string header, params string[] fragments) => Rejects(Raw(header), fragments);
}
