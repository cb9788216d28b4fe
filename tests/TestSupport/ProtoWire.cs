using Google.Protobuf;

namespace Headwise.TestSupport;

/// <summary>Protobuf encodings written by hand, for the valid encodings a generated serializer never produces.</summary>
public static class ProtoWire
{
    /// <summary>A length-delimited field holding <paramref name="body"/>.</summary>
    public static byte[] Field(int number, byte[] body)
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        output.WriteTag(number, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(body));
        output.Flush();
        return stream.ToArray();
    }

    /// <summary>Fields numbered 100–103, which no message of the proto has: one of each wire type but groups.</summary>
    public static byte[] Unknown()
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        output.WriteTag(100, WireFormat.WireType.Varint);
        output.WriteUInt64(ulong.MaxValue);
        output.WriteTag(101, WireFormat.WireType.Fixed64);
        output.WriteFixed64(42);
        output.WriteTag(102, WireFormat.WireType.LengthDelimited);
        output.WriteString("unknown");
        output.WriteTag(103, WireFormat.WireType.Fixed32);
        output.WriteFixed32(7);
        output.Flush();
        return stream.ToArray();
    }

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
