using System.Runtime.InteropServices;
using Headwise.Grains;
using Headwise.Grains.Decode;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Storage;

namespace Headwise.Grains.Tests;

/// <summary>
/// <see cref="ExactGrainStorageSerializer"/> writes the bytes Orleans' own storage serializer writes (a Redis store
/// written by either reads with the other), into an array of exactly their length.
/// </summary>
public sealed class ExactGrainStorageSerializerTests
{
    private static readonly Serializer Serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
    private static readonly ExactGrainStorageSerializer Exact = new(Serializer);
    private static readonly OrleansGrainStorageSerializer Orleans = new(Serializer);

    public static TheoryData<int> RowBytes => [0, 1, 255, 3072, 65_536, 4 << 20];

    [Theory]
    [MemberData(nameof(RowBytes))]
    public void A_stored_piece_is_orleans_bytes_in_an_array_of_their_length(int rowBytes)
    {
        var rows = new byte[rowBytes];
        new Random(rowBytes).NextBytes(rows);
        var piece = new SessionInputPiece { Start = 7, Tokens = 3, Rows = rows };

        var exact = Exact.Serialize(piece).ToMemory();
        Assert.Equal(Orleans.Serialize(piece).ToArray(), exact.ToArray());
        Assert.True(MemoryMarshal.TryGetArray(exact, out var segment));
        Assert.Equal(exact.Length, segment.Array!.Length);

        var back = Exact.Deserialize<SessionInputPiece>(new BinaryData(exact));
        Assert.Equal((7, 3), (back!.Start, back.Tokens));
        Assert.Equal(rows, back.Rows);
    }

    [Fact]
    public void Each_reads_what_the_other_wrote()
    {
        var record = new SessionRecord
        {
            Model = "m",
            Layer = 2,
            HeadVersions = [Guid.NewGuid(), Guid.NewGuid()],
            Position = 130,
            InputTail = [128, 129],
            LastStep = new SessionStepRecord { Before = 129, Tokens = 1, InputDigest = [1, 2, 3], Output = new byte[3072] },
        };

        var fromOrleans = Exact.Deserialize<SessionRecord>(Orleans.Serialize(record))!;
        var fromExact = Orleans.Deserialize<SessionRecord>(Exact.Serialize(record))!;
        foreach (var read in new[] { fromOrleans, fromExact })
        {
            Assert.Equal(record.HeadVersions, read.HeadVersions);
            Assert.Equal(record.InputTail, read.InputTail);
            Assert.Equal((record.Model, record.Layer, record.Position), (read.Model, read.Layer, read.Position));
            Assert.Equal(record.LastStep.Output, read.LastStep!.Output);
        }
    }

    [Fact]
    public void No_state_is_stored_as_orleans_stores_none()
    {
        Assert.Equal(Orleans.Serialize<SessionInputSegment>(null).ToArray(), Exact.Serialize<SessionInputSegment>(null).ToArray());
        Assert.Null(Exact.Deserialize<SessionInputSegment>(Orleans.Serialize<SessionInputSegment>(null)));
    }
}
